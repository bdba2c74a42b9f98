"""api_call templates: placeholders in strings, lists and dicts, raw values, missing paths."""

from __future__ import annotations

import pytest

from docflow.templating import TemplateError, UnknownSecretError, placeholders, render_template, render_url

DATA = {
    "invoice": {"total": 1440.0, "id": "INV-1", "paid": False},
    "items": [{"sku": "A-1"}, {"sku": "B-2"}],
    "note": None,
}


def test_placeholder_inside_text_is_written_as_text() -> None:
    rendered = render_template("https://erp.example/invoices/{{ invoice.id }}?sku={{items[1].sku}}", DATA)
    assert rendered == "https://erp.example/invoices/INV-1?sku=B-2"


def test_a_lone_placeholder_keeps_the_raw_json_value() -> None:
    assert render_template("{{ invoice.total }}", DATA) == 1440.0
    assert render_template("{{ invoice }}", DATA) == DATA["invoice"]
    assert render_template("{{ invoice.paid }}", DATA) is False
    assert render_template("{{ note }}", DATA) is None


def test_whole_input_aliases() -> None:
    for template in ("{{ input }}", "{{ . }}", "{{ $ }}", "{{ data }}"):
        assert render_template(template, DATA) == DATA


def test_non_strings_in_text_are_written_as_json() -> None:
    rendered = render_template("paid={{ invoice.paid }} note={{ note }} first={{ items[0] }}", DATA)
    assert rendered == 'paid=false note=null first={"sku":"A-1"}'


def test_nested_structures_are_walked_and_other_values_kept() -> None:
    template = {
        "ref-{{ invoice.id }}": ["{{ invoice.total }}", "total: {{ invoice.total }}", 3, None],
        "fixed": True,
    }
    assert render_template(template, DATA) == {"ref-INV-1": [1440.0, "total: 1440.0", 3, None], "fixed": True}


def test_missing_path_raises_with_the_path() -> None:
    with pytest.raises(TemplateError) as info:
        render_template({"body": ["ok {{ invoice.id }}", "{{ invoice.customer.name }}"]}, DATA)
    assert info.value.path == "invoice.customer.name"


def test_bad_path_and_wildcards_raise() -> None:
    with pytest.raises(TemplateError):
        render_template("{{ items..sku }}", DATA)
    with pytest.raises(TemplateError) as info:
        render_template("{{ items.*.sku }}", DATA)
    assert info.value.path == "items.*.sku"


def test_placeholders_lists_every_path() -> None:
    template = {"url": "/x/{{ a.b }}/{{c}}", "{{ k }}": ["{{ d[0] }}"]}
    assert placeholders(template) == ["a.b", "c", "k", "d[0]"]


def test_url_values_are_percent_encoded_and_cannot_move_the_host() -> None:
    data = {"path": "@127.0.0.1:8888/latest/meta-data/", "q": "a&b=c#d"}
    url = render_url("https://api.example.com/v1/{{ path }}?q={{ q }}", data)
    assert url == "https://api.example.com/v1/%40127.0.0.1%3A8888%2Flatest%2Fmeta-data%2F?q=a%26b%3Dc%23d"
    assert render_url("http://127.0.0.2:9000?x={{ path }}", data).startswith("http://127.0.0.2:9000?x=%40")


@pytest.mark.parametrize("template", ["https://api.example.com{{ path }}", "https://{{ path }}/x"])
def test_url_whose_origin_is_a_placeholder_is_an_error(template: str) -> None:
    with pytest.raises(TemplateError) as raised:
        render_url(template, {"path": "@127.0.0.1/"})
    assert raised.value.path == "url"


def test_secrets_come_from_the_given_mapping_not_the_input() -> None:
    secrets = {"ERP_TOKEN": "s3cr3t-value"}
    data = {"secrets": {"ERP_TOKEN": "from-input"}}
    assert render_template("Bearer {{ secrets.ERP_TOKEN }}", data, secrets) == "Bearer s3cr3t-value"
    assert render_template({"t": "{{ secrets.ERP_TOKEN }}"}, data, secrets) == {"t": "s3cr3t-value"}
    with pytest.raises(UnknownSecretError) as raised:
        render_template("{{ secrets.OTHER }}", data, secrets)
    assert raised.value.name == "OTHER" and "s3cr3t" not in str(raised.value)
    with pytest.raises(UnknownSecretError):
        render_template("{{ secrets.ERP_TOKEN }}", data)
