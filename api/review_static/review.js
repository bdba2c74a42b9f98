// docflow review page: reads the generated form back into JSON, adds and removes array items, and sends
// save / approve / reject to this page's own actions (the reviewer link's cookie authorizes them).
"use strict";

(function () {
  const form = document.getElementById("review-form");
  if (!form) return;
  const status = document.getElementById("status");
  let dirty = false;
  let nextId = 1;

  function say(message, kind) {
    if (!status) return;
    status.textContent = message;
    status.className = kind || "";
    if (kind === "error") status.setAttribute("role", "alert");
  }

  // The value elements directly under `el` (elements with data-kind whose nearest such ancestor is `el`).
  function children(el) {
    return Array.from(el.querySelectorAll("[data-kind]")).filter(
      (c) => c.parentElement.closest("[data-kind]") === el && !c.closest("template")
    );
  }

  class FieldError extends Error {
    constructor(el, message) {
      super(message);
      this.el = el;
    }
  }

  function read(el) {
    const kind = el.dataset.kind;
    const nullable = el.dataset.nullable === "1";
    if (kind === "object") {
      const out = {};
      for (const c of children(el)) {
        const v = read(c);
        // A key the data did not have stays out unless the reviewer filled it.
        if (c.dataset.absent === "1" && (v === null || v === "")) continue;
        out[c.dataset.key] = v;
      }
      return out;
    }
    if (kind === "array") {
      return children(el).map(read);
    }
    if (kind === "enum") return JSON.parse(el.value);
    if (kind === "json") {
      try {
        return JSON.parse(el.value);
      } catch (e) {
        throw new FieldError(el, "not valid JSON");
      }
    }
    if (kind === "number" || kind === "integer") {
      if (el.value.trim() === "") return null;
      const n = Number(el.value);
      if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) {
        throw new FieldError(el, kind === "integer" ? "needs a whole number" : "needs a number");
      }
      return n;
    }
    if (el.value === "" && nullable) return null;
    return el.value;
  }

  function snapshot() {
    // The first value element of the form is the root (an object); the rest are its descendants.
    return read(form.querySelector("[data-kind]"));
  }

  function renumber(item) {
    for (const el of item.querySelectorAll("[id]")) {
      const fresh = "n" + nextId++ + "-" + el.id;
      const label = item.querySelector('label[for="' + el.id + '"]');
      if (label) label.htmlFor = fresh;
      el.id = fresh;
    }
  }

  form.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.classList.contains("f-add")) {
      const fieldset = button.closest("fieldset");
      const template = fieldset.querySelector(":scope > template");
      const item = template.content.firstElementChild.cloneNode(true);
      renumber(item);
      fieldset.querySelector(":scope > ol").appendChild(item);
      const first = item.querySelector("input, select, textarea");
      if (first) first.focus();
      dirty = true;
    } else if (button.classList.contains("f-remove")) {
      const item = button.closest("li");
      const list = item.parentElement;
      item.remove();
      dirty = true;
      const next = list.closest("fieldset").querySelector(".f-add");
      if (next) next.focus();
    }
  });
  form.addEventListener("input", () => {
    dirty = true;
  });
  form.addEventListener("submit", (event) => event.preventDefault());

  function value(id) {
    const el = document.getElementById(id);
    return el ? el.value.trim() : "";
  }

  async function send(action, body) {
    const response = await fetch(action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = data.detail || {};
      const error = new Error(detail.message || "the server answered " + response.status);
      error.field = (detail.details || {}).field;
      throw error;
    }
    return data;
  }

  function clearErrors() {
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  // Saves the form as a new version when it was edited; the id of the version to decide on.
  async function saveIfEdited(force) {
    clearErrors();
    if (!dirty && !force) return form.dataset.version;
    let data;
    try {
      data = snapshot();
    } catch (e) {
      if (e instanceof FieldError) {
        e.el.setAttribute("aria-invalid", "true");
        e.el.focus();
        throw new Error((e.el.dataset.path || "a field") + ": " + e.message);
      }
      throw e;
    }
    const version = await send("versions", {
      parent_id: form.dataset.version,
      snapshot: data,
      note: value("note") || null,
      reviewer: value("reviewer") || null,
    });
    form.dataset.version = version.id;
    dirty = false;
    return version.id;
  }

  function busy(on) {
    for (const id of ["save", "approve", "reject"]) {
      const b = document.getElementById(id);
      if (b) b.disabled = on;
    }
  }

  async function act(work) {
    busy(true);
    try {
      await work();
    } catch (e) {
      say(e.message, "error");
      busy(false);
      markField(e.field);
    }
  }

  // The server names a refused field as `snapshot.lines.0.qty`; the form's paths read `lines[0].qty`.
  function markField(field) {
    if (typeof field !== "string" || !field.startsWith("snapshot.")) return;
    const wanted = field.slice("snapshot.".length);
    for (const el of form.querySelectorAll("[data-path]")) {
      if (el.dataset.path.replace(/\[(\d+)\]/g, ".$1") === wanted) {
        el.setAttribute("aria-invalid", "true");
        el.focus();
        return;
      }
    }
  }

  function reloadShowing(version) {
    window.location.assign("./?version=" + encodeURIComponent(version));
  }

  const save = document.getElementById("save");
  const approve = document.getElementById("approve");
  const reject = document.getElementById("reject");
  if (save) {
    save.addEventListener("click", () =>
      act(async () => {
        const id = await saveIfEdited(true);
        say("Saved as version " + id + ".", "ok");
        reloadShowing(id);
      })
    );
  }
  if (approve) {
    approve.addEventListener("click", () =>
      act(async () => {
        const id = await saveIfEdited(false);
        const answer = await send("approve", { version_id: id, reviewer: value("reviewer") || null });
        say("Approved (" + answer.submission_status + "); the run goes on.", "ok");
        reloadShowing(id);
      })
    );
  }
  if (reject) {
    reject.addEventListener("click", () =>
      act(async () => {
        const reason = value("reason");
        if (!reason) {
          const box = document.getElementById("reason");
          box.setAttribute("aria-invalid", "true");
          box.focus();
          throw new Error("A rejection needs a reason.");
        }
        const id = form.dataset.version;
        await send("reject", { version_id: id, reason: reason, reviewer: value("reviewer") || null });
        say("Rejected.", "ok");
        reloadShowing(id);
      })
    );
  }
  // Ctrl+S / Cmd+S saves a version.
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s" && save && !save.disabled) {
      event.preventDefault();
      save.click();
    }
  });
  if (form.dataset.open !== "1") {
    for (const el of form.querySelectorAll("input, select, textarea, button")) el.disabled = true;
  }
})();
