// The selection builder (templates/selection/builder.html): reads the form into a recipe,
// asks the selection API for a preview or creates the selection. Plain JS, no CDN.
(function () {
  "use strict";
  const form = document.getElementById("selection-builder");
  if (!form) return;
  const errorBox = form.querySelector("[data-testid=selection-error]");
  const statusBox = form.querySelector("[data-testid=selection-status]");
  const previewBox = document.getElementById("selection-preview");

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function value(name) {
    const el = form.elements.namedItem(name);
    return el && "value" in el ? el.value.trim() : "";
  }

  form.querySelectorAll("input[type=range]").forEach(function (range) {
    range.addEventListener("input", function () {
      range.nextElementSibling.textContent = range.value;
    });
  });

  function recipe() {
    const body = { strategies: [], weights: {}, budget: Number(value("budget")), seed: Number(value("seed") || 0) };
    const pool = {};
    if (value("pool_slice")) pool.slice = Number(value("pool_slice"));
    if (value("pool_query")) pool.query = value("pool_query");
    body.pool = pool;
    form.querySelectorAll(".strategy").forEach(function (box) {
      const name = box.dataset.strategy;
      if (!box.querySelector("input[type=checkbox]").checked) return;
      const s = { name: name };
      const opt = function (key) { return value(name + "_" + key); };
      if (opt("model")) s.model = opt("model");
      if (name === "uncertainty" || name === "uniqueness") s.field = opt("field");
      if (name === "diversity" && opt("dims")) s.dims = Number(opt("dims"));
      if (name === "balance") s.source = opt("source");
      if (name === "similarity" || name === "exclude") {
        if (opt("slice")) s.slice = opt("slice");
        else if (opt("tag")) s.tag = opt("tag");
      }
      if (name === "exclude" && Number(opt("radius")) > 0) s.radius = Number(opt("radius"));
      if (name === "metadata") {
        s.key = opt("key");
        try { s.values = JSON.parse(opt("values") || "{}"); } catch (e) { s.values = opt("values"); }
      }
      body.strategies.push(s);
      if (box.dataset.kind !== "filter") body.weights[name] = Number(value("weight_" + name));
    });
    return body;
  }

  async function send(url, body) {
    errorBox.hidden = true;
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) {
      const fields = (data.error && data.error.fields) || data.fields || [];
      errorBox.textContent = fields.length
        ? fields.map(function (f) { return f.path + ": " + f.message; }).join("; ")
        : (data.error && data.error.message) || data.message || "Refused (" + response.status + ").";
      errorBox.hidden = false;
      statusBox.textContent = "";
      return null;
    }
    return data;
  }

  function showPreview(data) {
    previewBox.hidden = false;
    const rows = previewBox.querySelector("tbody");
    rows.textContent = "";
    const strategies = data.figures.strategies || {};
    Object.keys(strategies).forEach(function (name) {
      const f = strategies[name];
      const tr = document.createElement("tr");
      let part = "";
      if (f.kind === "score") part = "mean " + f.selected_mean + " picked vs " + f.pool_mean + " in the pool";
      else if (f.kind === "filter") part = f.excluded + " items excluded";
      else if (f.classes) part = Object.keys(f.classes).map(function (c) { return c + " " + f.classes[c].selected + "/" + f.classes[c].available; }).join(", ");
      else if (f.radius !== undefined) part = "coverage radius " + f.radius + " over " + f.candidates + " candidates";
      else if (f.count !== undefined) part = f.count + " candidates";
      [name, f.kind || "", part].forEach(function (text) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    const tiles = previewBox.querySelector(".tiles");
    tiles.textContent = "";
    data.items.forEach(function (item) {
      const a = document.createElement("a");
      a.href = form.dataset.grid + "items/" + item.id;
      a.className = "tile";
      a.title = item.reference_id;
      if (item.thumbnail_url) {
        const img = document.createElement("img");
        img.src = item.thumbnail_url;
        img.alt = item.reference_id;
        img.loading = "lazy";
        img.width = 96;
        a.appendChild(img);
      } else {
        a.textContent = item.reference_id;
      }
      tiles.appendChild(a);
    });
    statusBox.textContent = data.item_count + " items would be selected (" + data.figures.eligible + " eligible of " + data.figures.pool + ").";
  }

  form.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const body = recipe();
    if (button.dataset.action === "preview") {
      statusBox.textContent = "Previewing…";
      const data = await send(form.dataset.preview, body);
      if (data) showPreview(data);
    } else {
      body.name = value("name");
      statusBox.textContent = "Creating…";
      const data = await send(form.dataset.create, body);
      if (!data) return;
      if (data.slice) {
        statusBox.textContent = "Created slice " + data.slice.name + " (" + data.item_count + " items, version " + data.version + ").";
      } else {
        statusBox.textContent = "Started job #" + data.job.id + "; the slice appears when it ends.";
      }
    }
  });
})();
