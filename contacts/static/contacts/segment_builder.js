/* The segment builder: rows of field / operator / value in "all" or "any" groups (one nested
   level), kept in the rules textarea as the JSON the rule language reads (contacts/segments.py),
   and a count of matching contacts from the admin's preview endpoint. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function select(options, value, label, className) {
    var node = el("select", { "aria-label": label, className: className || "" });
    options.forEach(function (option) {
      var item = el("option", { value: option[0], text: option[1] });
      if (String(option[0]) === String(value)) item.selected = true;
      node.appendChild(item);
    });
    return node;
  }

  // A value typed the way the importer types attribute cells: numbers (no leading zero) and true/false.
  function typed(text) {
    var value = String(text).trim();
    if (value === "true" || value === "false") return value === "true";
    if (/^-?(0|[1-9]\d{0,14})(\.\d+)?$/.test(value)) return Number(value);
    return value;
  }

  function init(widget) {
    var textarea = widget.querySelector("textarea");
    var spec = JSON.parse(widget.querySelector("#segment-builder-spec").textContent);
    var root = widget.querySelector(".segment-builder");
    var result = widget.querySelector(".segment-count-result");
    var fieldsByName = {};
    spec.fields.forEach(function (field) { fieldsByName[field.name] = field; });
    var choices = { lists: [], tags: [] };
    var model = null;
    var lastError = null;

    function kindOf(name) {
      if (!name) return null;
      if (name.indexOf("attributes.") === 0) return "attribute";
      return fieldsByName[name] ? fieldsByName[name].kind : null;
    }

    function emptyCondition() { return { field: "email", key: "", op: "eq", value: "", within_days: "" }; }

    function fromCondition(node) {
      var field = node.field || "";
      var condition = { field: field, key: "", op: node.op || "", value: node.value, within_days: node.within_days || "" };
      if (field.indexOf("attributes.") === 0) { condition.field = "attributes."; condition.key = field.slice(11); }
      if (!kindOf(field)) return null;
      return condition;
    }

    // The stored JSON as the builder's model, or null when it uses more than the builder shows.
    function parse(rules) {
      if (rules === null || rules === undefined || (typeof rules === "object" && !Array.isArray(rules) && !Object.keys(rules).length)) {
        return { mode: "all", items: [emptyCondition()] };
      }
      if (typeof rules !== "object" || Array.isArray(rules)) return null;
      if (rules.field) { var single = fromCondition(rules); return single ? { mode: "all", items: [single] } : null; }
      var mode = rules.all ? "all" : (rules.any ? "any" : null);
      if (!mode || Object.keys(rules).length !== 1 || !Array.isArray(rules[mode])) return null;
      var items = [];
      for (var i = 0; i < rules[mode].length; i++) {
        var child = rules[mode][i];
        if (child && child.field) {
          var condition = fromCondition(child);
          if (!condition) return null;
          items.push(condition);
        } else {
          var childMode = child && (child.all ? "all" : (child.any ? "any" : null));
          if (!childMode || Object.keys(child).length !== 1 || !Array.isArray(child[childMode])) return null;
          var group = { mode: childMode, items: [] };
          for (var j = 0; j < child[childMode].length; j++) {
            var inner = child[childMode][j];
            var innerCondition = inner && inner.field ? fromCondition(inner) : null;
            if (!innerCondition) return null;
            group.items.push(innerCondition);
          }
          items.push(group);
        }
      }
      return { mode: mode, items: items };
    }

    function conditionJSON(condition) {
      var kind = kindOf(condition.field);
      var field = kind === "attribute" ? "attributes." + condition.key.trim() : condition.field;
      var node = { field: field, op: condition.op };
      var value = condition.value;
      if (condition.op === "exists") {
        node.value = value === false || value === "false" ? false : true;
      } else if (condition.op === "in") {
        var parts = Array.isArray(value) ? value : String(value || "").split(",");
        parts = parts.map(function (part) { return String(part).trim(); }).filter(Boolean);
        node.value = kind === "attribute" ? parts.map(typed) : parts;
      } else if (kind === "attribute" && ["eq", "neq", "gt", "gte", "lt", "lte"].indexOf(condition.op) >= 0) {
        node.value = typed(value === undefined || value === null ? "" : value);
      } else {
        node.value = value === undefined || value === null ? "" : String(value);
      }
      if (kind === "event" && String(condition.within_days).trim()) {
        var days = Number(condition.within_days);
        node.within_days = Number.isInteger(days) ? days : condition.within_days;
      }
      return node;
    }

    function toJSON() {
      var items = model.items.map(function (item) {
        if (item.items) {
          var inner = {};
          inner[item.mode] = item.items.map(conditionJSON);
          return inner;
        }
        return conditionJSON(item);
      });
      var rules = {};
      rules[model.mode] = items;
      return rules;
    }

    function store() {
      if (model) textarea.value = JSON.stringify(toJSON(), null, 2);
    }

    function valueInput(condition, kind, onChange) {
      var op = condition.op;
      if (op === "exists") {
        return select([["true", "yes"], ["false", "no"]], condition.value === false || condition.value === "false" ? "false" : "true",
          "Value", "segment-value");
      }
      if (kind === "status") {
        if (op === "in") {
          var multiple = el("select", { multiple: "multiple", "aria-label": "Value", className: "segment-value" });
          var chosen = Array.isArray(condition.value) ? condition.value : [];
          spec.statuses.forEach(function (status) {
            var option = el("option", { value: status, text: status });
            if (chosen.indexOf(status) >= 0) option.selected = true;
            multiple.appendChild(option);
          });
          return multiple;
        }
        return select(spec.statuses.map(function (s) { return [s, s]; }), condition.value, "Value", "segment-value");
      }
      if (kind === "lists") {
        var lists = choices.lists.map(function (item) { return [item.id, item.name]; });
        if (op === "in") {
          var many = el("select", { multiple: "multiple", "aria-label": "Value", className: "segment-value" });
          var picked = Array.isArray(condition.value) ? condition.value : [];
          lists.forEach(function (item) {
            var option = el("option", { value: item[0], text: item[1] });
            if (picked.indexOf(item[0]) >= 0) option.selected = true;
            many.appendChild(option);
          });
          return many;
        }
        return select([["", "(choose a list)"]].concat(lists), condition.value, "Value", "segment-value");
      }
      var text = Array.isArray(condition.value) ? condition.value.join(", ") : (condition.value === undefined || condition.value === null ? "" : String(condition.value));
      var placeholder = op === "in" ? "values, separated by commas" : "value";
      if (kind === "time" || op === "before" || op === "after") placeholder = "2026-01-31 or 30 days ago";
      if (kind === "event") placeholder = "event name";
      var input = el("input", { type: "text", value: text, placeholder: placeholder, "aria-label": "Value", className: "segment-value" });
      if (kind === "tags") input.setAttribute("list", "segment-tag-names");
      return input;
    }

    function readValue(node, condition) {
      if (node.multiple) {
        condition.value = Array.prototype.filter.call(node.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
      } else {
        condition.value = node.value;
      }
    }

    function conditionRow(condition, path, container, index) {
      var kind = kindOf(condition.field);
      var row = el("div", { className: "segment-row", "data-path": path });
      var fieldSelect = select(spec.fields.map(function (f) { return [f.name, f.label]; }), condition.field, "Field", "segment-field");
      fieldSelect.addEventListener("change", function () {
        condition.field = fieldSelect.value;
        var ops = spec.operators[kindOf(condition.field)];
        if (ops.indexOf(condition.op) < 0) condition.op = ops[0];
        condition.value = "";
        render();
      });
      row.appendChild(fieldSelect);
      if (kind === "attribute") {
        var key = el("input", { type: "text", value: condition.key, placeholder: "attribute key, e.g. city", "aria-label": "Attribute key", className: "segment-key" });
        key.addEventListener("input", function () { condition.key = key.value; store(); });
        row.appendChild(key);
      }
      var ops = spec.operators[kind];
      var opSelect = select(ops.map(function (op) { return [op, spec.operator_labels[op] || op]; }), condition.op, "Operator", "segment-op");
      opSelect.addEventListener("change", function () {
        var wasList = condition.op === "in" || condition.op === "exists";
        condition.op = opSelect.value;
        if (wasList || condition.op === "in" || condition.op === "exists") condition.value = "";
        render();
      });
      row.appendChild(opSelect);
      var value = valueInput(condition, kind);
      value.addEventListener("input", function () { readValue(value, condition); store(); });
      value.addEventListener("change", function () { readValue(value, condition); store(); });
      row.appendChild(value);
      if (kind === "event") {
        var days = el("input", { type: "number", min: "1", max: "3650", value: condition.within_days, placeholder: "days", "aria-label": "Within days", className: "segment-days" });
        days.addEventListener("input", function () { condition.within_days = days.value; store(); });
        row.appendChild(el("span", { text: "within" }));
        row.appendChild(days);
        row.appendChild(el("span", { text: "days (empty: ever)" }));
      }
      var remove = el("button", { type: "button", className: "button segment-remove", title: "Remove this condition", text: "✕" });
      remove.addEventListener("click", function () { container.splice(index, 1); render(); });
      row.appendChild(remove);
      return row;
    }

    function groupBox(group, path, isRoot, parentItems, index) {
      var box = el("div", { className: "segment-group", "data-path": path });
      var mode = select([["all", "all"], ["any", "any"]], group.mode, "Match", "segment-mode");
      mode.addEventListener("change", function () { group.mode = mode.value; render(); });
      var head = el("div", { className: "segment-group-head" }, [
        el("span", { text: isRoot ? "Contacts matching " : "and matching " }), mode, el("span", { text: " of these conditions:" }),
      ]);
      box.appendChild(head);
      group.items.forEach(function (item, i) {
        var itemPath = path + "." + group.mode + "[" + i + "]";
        box.appendChild(item.items ? groupBox(item, itemPath, false, group.items, i) : conditionRow(item, itemPath, group.items, i));
      });
      var actions = el("div", { className: "segment-actions" });
      var add = el("button", { type: "button", className: "button segment-add", text: "Add a condition" });
      add.addEventListener("click", function () { group.items.push(emptyCondition()); render(); });
      actions.appendChild(add);
      if (isRoot) {
        var addGroup = el("button", { type: "button", className: "button segment-add-group", text: "Add a group" });
        addGroup.addEventListener("click", function () { group.items.push({ mode: "any", items: [emptyCondition()] }); render(); });
        actions.appendChild(addGroup);
      } else {
        var removeGroup = el("button", { type: "button", className: "button segment-remove-group", text: "Remove the group" });
        removeGroup.addEventListener("click", function () { parentItems.splice(index, 1); render(); });
        actions.appendChild(removeGroup);
      }
      box.appendChild(actions);
      return box;
    }

    function markError(path, message) {
      lastError = path ? { path: path, message: message } : null;
      root.querySelectorAll(".segment-error").forEach(function (node) { node.classList.remove("segment-error"); });
      root.querySelectorAll(".segment-row-error").forEach(function (node) { node.remove(); });
      if (!path) return;
      var best = null;
      root.querySelectorAll("[data-path]").forEach(function (node) {
        var own = node.getAttribute("data-path");
        if ((path === own || path.indexOf(own + ".") === 0) && (!best || own.length > best.getAttribute("data-path").length)) best = node;
      });
      if (best) {
        best.classList.add("segment-error");
        if (message) best.appendChild(el("div", { className: "segment-row-error", text: message }));
      }
    }

    function render() {
      root.innerHTML = "";
      if (!model) {
        root.appendChild(el("p", { className: "help", text: "These rules use more than the builder shows (a 'not' or deeper groups): edit them as JSON below." }));
        widget.querySelector(".segment-json").open = true;
        return;
      }
      root.appendChild(groupBox(model, "rules", true, null, 0));
      var names = el("datalist", { id: "segment-tag-names" });
      choices.tags.forEach(function (name) { names.appendChild(el("option", { value: name })); });
      root.appendChild(names);
      store();
      if (lastError) markError(lastError.path, lastError.message);
    }

    function organization() {
      var picker = document.getElementById("id_organization");
      return (picker && picker.value) || textarea.getAttribute("data-organization") || "";
    }

    function loadChoices() {
      var org = organization();
      if (!org) { choices = { lists: [], tags: [] }; render(); return; }
      fetch(widget.getAttribute("data-choices-url") + "?organization=" + encodeURIComponent(org), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : { lists: [], tags: [] }; })
        .then(function (data) { choices = data; render(); });
    }

    function count() {
      store();
      var org = organization();
      result.classList.remove("segment-count-error");
      if (!org) { result.textContent = "Choose the organization first."; result.classList.add("segment-count-error"); return; }
      result.textContent = "Counting…";
      var body = new FormData();
      body.append("organization", org);
      body.append("rules", textarea.value);
      var token = document.querySelector("input[name=csrfmiddlewaretoken]");
      fetch(widget.getAttribute("data-preview-url"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: token ? { "X-CSRFToken": token.value } : {},
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (answer) {
        if (answer.ok) {
          markError(null);
          var sample = answer.data.sample.length ? " (e.g. " + answer.data.sample.join(", ") + ")" : "";
          result.textContent = answer.data.count + " matching contact" + (answer.data.count === 1 ? "" : "s") + sample;
        } else {
          var error = (answer.data.errors || [{ path: "", message: answer.data.detail || "Not counted." }])[0];
          result.textContent = error.message;
          result.classList.add("segment-count-error");
          markError(error.path, error.message);
        }
      }).catch(function () {
        result.textContent = "Could not count: the server did not answer.";
        result.classList.add("segment-count-error");
      });
    }

    var stored = textarea.value.trim();
    try { model = parse(stored ? JSON.parse(stored) : null); } catch (e) { model = null; }
    textarea.addEventListener("change", function () {
      try { var parsed = parse(JSON.parse(textarea.value)); if (parsed) { model = parsed; render(); } } catch (e) { /* left as typed */ }
    });
    widget.querySelector(".segment-count").addEventListener("click", count);
    var picker = document.getElementById("id_organization");
    if (picker) picker.addEventListener("change", loadChoices);
    render();
    loadChoices();
    var errorPath = textarea.getAttribute("data-error-path");
    if (errorPath) {
      var errors = document.querySelector(".field-rules .errorlist");
      markError(errorPath, errors ? errors.textContent.replace(errorPath + ": ", "") : "");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".segment-builder-widget").forEach(init);
  });
})();
