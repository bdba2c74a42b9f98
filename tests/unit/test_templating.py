"""api_call templates: placeholders in strings, lists and dicts, raw values, missing paths."""

from __future__ import annotations

import pytest

from docflow.templating import TemplateError, placeholders, render_template

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
