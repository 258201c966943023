/* The item view's annotation editor: draw, move and resize boxes, edit polygon vertices,
   relabel (type-ahead over the dataset's labels), delete, add image categories, accept a
   prediction, undo and redo, zoom and pan; saved through the REST API with each
   annotation's version, a stale one answered 409 and resolved in a dialog (reload or
   overwrite). Geometry is in image pixels, as the API's. Loaded for curators only.
   Longer than 600 lines on purpose: every part (drawing, pointer, keys, saving, the
   conflict dialog) reads and changes one state (shapes, what the server holds,
   the selection, the undo stack); split, that state would be passed through every call. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = document.getElementById("editor-data");
  if (!data) return;
  var cfg = JSON.parse(data.textContent);
  var W = cfg.width, H = cfg.height;
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  var bar = $("#editor-bar"), panel = $("#editor-panel");
  var frame = $(".item-figure .frame"), layer = $(".zoom-layer", frame);
  var labelInput = $("#editor-label"), categoryInput = $("#editor-category");
  var statusEl = $("[data-editor-status]", bar), conflictDialog = $("#editor-conflict");
  var svg = null, open = false;

  /* ------------------------------------------------------------ state */
  // shapes: what the user sees (undoable). server: what the server holds, by key (not).
  var shapes = [], server = {}, undoStack = [], redoStack = [], counter = 0;
  var selected = null; // {type: "ann"|"pred", key, vertex}
  var tool = "select", showPredictions = true, draft = null, drag = null;
  var view = { s: 1, tx: 0, ty: 0 }, spaceDown = false;
  var currentLabel = (cfg.annotations[0] && cfg.annotations[0].label) || Object.keys(cfg.colours)[0] || "";

  function copy(value) { return JSON.parse(JSON.stringify(value)); }
  function newKey() { counter += 1; return "k" + counter; }
  function newId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return "editor-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function load() {
    shapes = []; server = {};
    cfg.annotations.forEach(function (a) {
      var key = newKey();
      shapes.push({ key: key, id: a.id, kind: a.kind, label: a.label, geometry: copy(a.geometry), deleted: false });
      server[key] = { pk: a.pk, version: a.version, label: a.label, geometry: copy(a.geometry) };
    });
  }
  function find(key) { for (var i = 0; i < shapes.length; i++) if (shapes[i].key === key) return shapes[i]; return null; }
  function live() { return shapes.filter(function (s) { return !s.deleted; }); }
  function drawable() { return live().filter(function (s) { return s.kind !== "category"; }); }
  function colour(label) { return cfg.colours[label] || "#e8590c"; }
  function round(v) { return Math.round(v * 100) / 100; }
  function clamp(v, lo, hi) { return Math.min(Math.max(v, lo), hi); }
  function sameGeometry(a, b) {
    function norm(g) { return JSON.stringify(g, function (k, v) { return typeof v === "number" ? round(v) : v; }); }
    return norm(a || {}) === norm(b || {});
  }
  function pending(s) {
    var srv = server[s.key];
    if (!srv) return s.deleted ? null : "new";
    if (s.deleted) return "deleted";
    return srv.label !== s.label || !sameGeometry(srv.geometry, s.geometry) ? "changed" : null;
  }
  function dirty() { return shapes.some(pending); }

  // Every change: the state before it goes on the undo stack.
  function change(fn) {
    note = { text: "", cls: "" };
    undoStack.push(copy(shapes));
    redoStack = [];
    fn();
    render();
  }
  // A state from the undo or redo stack. A shape that it predates but the server now
  // holds (drawn, then saved) stays, as deleted, so that the next save deletes it.
  function restore(state) {
    var kept = {};
    state.forEach(function (s) { kept[s.key] = true; });
    shapes.forEach(function (s) {
      if (!kept[s.key] && server[s.key]) { var gone = copy(s); gone.deleted = true; state.push(gone); }
    });
    shapes = state;
    if (selected && selected.type === "ann" && !selectedShape()) selected = null;
    render();
  }
  function undo() {
    if (!undoStack.length) return;
    redoStack.push(copy(shapes));
    restore(undoStack.pop());
  }
  function redo() {
    if (!redoStack.length) return;
    undoStack.push(copy(shapes));
    restore(redoStack.pop());
  }

  /* ------------------------------------------------------------ geometry */
  function bounds(s) {
    var g = s.geometry;
    if (s.kind === "box") return [g.x, g.y, g.x + g.width, g.y + g.height];
    var pts = points(s);
    if (!pts.length) return [0, 0, 0, 0];
    var xs = pts.map(function (p) { return p[0]; }), ys = pts.map(function (p) { return p[1]; });
    return [Math.min.apply(null, xs), Math.min.apply(null, ys), Math.max.apply(null, xs), Math.max.apply(null, ys)];
  }
  function points(s) {
    var g = s.geometry;
    if (s.kind === "polygon" || s.kind === "line") return g.vertices || [];
    if (s.kind === "keypoints") return (g.keypoints || []).filter(function (k) { return k.visible !== false; }).map(function (k) { return [k.x, k.y]; });
    return [];
  }
  // Move a geometry by (dx, dy), kept inside the image.
  function translate(s, g0, dx, dy) {
    var b = bounds({ kind: s.kind, geometry: g0 });
    dx = clamp(dx, -b[0], W - b[2]);
    dy = clamp(dy, -b[1], H - b[3]);
    var g = copy(g0);
    if (s.kind === "box") { g.x = round(g0.x + dx); g.y = round(g0.y + dy); }
    else if (g.vertices) g.vertices = g0.vertices.map(function (p) { return [round(p[0] + dx), round(p[1] + dy)]; });
    else if (g.keypoints) g.keypoints.forEach(function (k) { if (k.visible !== false) { k.x = round(k.x + dx); k.y = round(k.y + dy); } });
    return g;
  }
  function boxFrom(x0, y0, x1, y1) {
    x0 = clamp(x0, 0, W); x1 = clamp(x1, 0, W); y0 = clamp(y0, 0, H); y1 = clamp(y1, 0, H);
    return { x: round(Math.min(x0, x1)), y: round(Math.min(y0, y1)), width: round(Math.abs(x1 - x0)), height: round(Math.abs(y1 - y0)) };
  }

  /* ------------------------------------------------------------ view: zoom and pan */
  function unit() { return svg.getBoundingClientRect().width / W; } // screen px per image px
  function toImage(event) {
    var r = svg.getBoundingClientRect();
    return [(event.clientX - r.left) / r.width * W, (event.clientY - r.top) / r.height * H];
  }
  function applyView() {
    var fw = frame.clientWidth, fh = frame.clientHeight;
    view.s = clamp(view.s, 1, 32);
    view.tx = clamp(view.tx, fw - fw * view.s, 0);
    view.ty = clamp(view.ty, fh - fh * view.s, 0);
    layer.style.transform = view.s === 1 ? "" : "translate(" + view.tx + "px," + view.ty + "px) scale(" + view.s + ")";
    $("[data-editor-zoom]", bar).textContent = Math.round(view.s * 100) + "%";
    render();
  }
  function zoomAt(factor, cx, cy) {
    var s = clamp(view.s * factor, 1, 32);
    view.tx = cx - (cx - view.tx) * s / view.s;
    view.ty = cy - (cy - view.ty) * s / view.s;
    view.s = s;
    applyView();
  }
  function zoomCentre(factor) { zoomAt(factor, frame.clientWidth / 2, frame.clientHeight / 2); }

  /* ------------------------------------------------------------ drawing */
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }
  function shapeNode(s, parent, cls) {
    var g = s.geometry, node;
    if (s.kind === "box") node = el("rect", { x: g.x, y: g.y, width: g.width, height: g.height, "class": cls }, parent);
    else if (s.kind === "polygon") node = el("polygon", { points: g.vertices.map(String).join(" "), "class": cls }, parent);
    else if (s.kind === "line") node = el("polyline", { points: g.vertices.map(String).join(" "), "class": cls }, parent);
    else if (s.kind === "keypoints") {
      points(s).forEach(function (p) { el("circle", { cx: p[0], cy: p[1], r: 4 / unit(), "class": cls }, parent); });
    }
    return node;
  }
  function isSelected(type, key) { return selected && selected.type === type && selected.key === key; }
  function render() {
    if (!svg) return;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var r = 5 / unit();
    var preds = el("g", {}, svg), anns = el("g", {}, svg), hits = el("g", {}, svg), handles = el("g", {}, svg);
    if (showPredictions) cfg.predictions.forEach(function (p) {
      if (p.kind === "category") return;
      var g = el("g", { "class": "ed-pred" + (isSelected("pred", "p" + p.pk) ? " is-selected" : ""), style: "--c:" + colour(p.label), "data-pred": p.pk }, preds);
      shapeNode(p, g, "body");
      var hit = el("g", { "data-pred": p.pk }, hits);
      shapeNode(p, hit, "ed-hit");
      el("title", {}, hit).textContent = p.label + " " + p.confidence.toFixed(2) + " (" + p.model + ")";
    });
    drawable().forEach(function (s) {
      var g = el("g", { "class": "ed-ann" + (isSelected("ann", s.key) ? " is-selected" : ""), style: "--c:" + colour(s.label), "data-key": s.key, "data-label": s.label }, anns);
      shapeNode(s, g, "body");
      el("title", {}, g).textContent = s.label;
    });
    var sel = selected && selected.type === "ann" ? find(selected.key) : null;
    if (sel && !sel.deleted) {
      var gg = sel.geometry;
      if (sel.kind === "box") {
        var xs = { w: gg.x, c: gg.x + gg.width / 2, e: gg.x + gg.width }, ys = { n: gg.y, c: gg.y + gg.height / 2, s: gg.y + gg.height };
        ["nw", "n", "ne", "e", "se", "s", "sw", "w"].forEach(function (h) {
          var x = xs[h.indexOf("w") >= 0 ? "w" : h.indexOf("e") >= 0 ? "e" : "c"];
          var y = ys[h.indexOf("n") >= 0 ? "n" : h.indexOf("s") >= 0 ? "s" : "c"];
          el("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r, "class": "ed-handle", "data-handle": h }, handles);
        });
      } else if (sel.kind === "polygon" || sel.kind === "line") {
        var v = gg.vertices, n = v.length;
        for (var i = 0; i < n - (sel.kind === "line" ? 1 : 0); i++) {
          var a = v[i], b = v[(i + 1) % n];
          el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], "class": "ed-edge", "data-edge": i }, handles);
        }
        v.forEach(function (p, i) {
          el("circle", { cx: p[0], cy: p[1], r: r, "class": "ed-handle" + (selected.vertex === i ? " is-active" : ""), "data-vertex": i }, handles);
        });
      }
    }
    if (draft && draft.kind === "box") el("rect", Object.assign(boxFrom(draft.x0, draft.y0, draft.x1, draft.y1), { "class": "ed-draft" }), handles);
    if (draft && draft.kind === "polygon" && draft.vertices.length) {
      var pts = draft.vertices.concat(draft.cursor ? [draft.cursor] : []);
      el("polyline", { points: pts.map(String).join(" "), "class": "ed-draft" }, handles);
      draft.vertices.forEach(function (p) { el("circle", { cx: p[0], cy: p[1], r: r * 0.8, "class": "ed-handle" }, handles); });
    }
    renderPanel();
  }

  /* ------------------------------------------------------------ side panel */
  function renderPanel() {
    var sel = selectedShape(), pred = selectedPrediction();
    if (document.activeElement !== labelInput) labelInput.value = sel ? sel.label : pred ? pred.label : currentLabel;
    $("[data-editor-selection]", panel).textContent = sel ? sel.kind + " " + sel.label + (pending(sel) ? " (unsaved)" : "")
      : pred ? "Prediction " + pred.label + " " + pred.confidence.toFixed(2) + " by " + pred.model + ": A accepts it"
      : "Nothing selected: new shapes get this label.";
    $("[data-action=delete]", panel).disabled = !sel;
    $("[data-action=accept]", panel).hidden = !pred;
    var list = $("[data-editor-objects]", panel);
    list.innerHTML = "";
    drawable().forEach(function (s, i) {
      var li = document.createElement("li"), b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-select", s.key);
      if (isSelected("ann", s.key)) b.setAttribute("aria-current", "true");
      var sw = document.createElement("span"); sw.className = "swatch"; sw.style.background = colour(s.label);
      var name = document.createElement("span"); name.textContent = (i + 1) + ". " + s.label;
      var kind = document.createElement("span"); kind.className = "kind"; kind.textContent = s.kind;
      b.appendChild(sw); b.appendChild(name);
      if (pending(s)) { var u = document.createElement("span"); u.className = "unsaved"; u.textContent = "•"; u.title = "unsaved"; b.appendChild(u); }
      b.appendChild(kind);
      li.appendChild(b); list.appendChild(li);
    });
    var cats = $("[data-editor-categories]", panel);
    cats.innerHTML = "";
    live().filter(function (s) { return s.kind === "category"; }).forEach(function (s) {
      var pill = document.createElement("span"); pill.className = "pill"; pill.textContent = s.label;
      var x = document.createElement("button"); x.type = "button"; x.textContent = "×";
      x.setAttribute("aria-label", "Remove category " + s.label); x.setAttribute("data-remove", s.key);
      pill.appendChild(x); cats.appendChild(pill);
    });
    $("[data-action=undo]", bar).disabled = !undoStack.length;
    $("[data-action=redo]", bar).disabled = !redoStack.length;
    $$("[data-tool]", bar).forEach(function (b) { b.setAttribute("aria-pressed", b.getAttribute("data-tool") === tool ? "true" : "false"); });
    if (svg) svg.setAttribute("class", "editor-svg tool-" + tool + (drag && drag.pan ? " panning" : ""));
    paintStatus();
  }
  var note = { text: "", cls: "" };
  function setStatus(text, cls) { note = { text: text, cls: cls || "" }; paintStatus(); }
  function paintStatus() {
    var shown = note.cls === "is-error" || note.cls === "is-dirty" || !dirty() ? note : { text: "Unsaved changes", cls: "is-dirty" };
    statusEl.textContent = shown.text;
    statusEl.className = "editor-status small " + shown.cls;
  }
  function selectedShape() { var s = selected && selected.type === "ann" ? find(selected.key) : null; return s && !s.deleted ? s : null; }
  function selectedPrediction() {
    if (!selected || selected.type !== "pred") return null;
    return cfg.predictions.filter(function (p) { return "p" + p.pk === selected.key; })[0] || null;
  }
  function select(type, key, vertex) { selected = key ? { type: type, key: key, vertex: vertex == null ? null : vertex } : null; render(); }
  function cycle(step) {
    var all = drawable().map(function (s) { return ["ann", s.key]; });
    if (showPredictions) cfg.predictions.forEach(function (p) { if (p.kind !== "category") all.push(["pred", "p" + p.pk]); });
    if (!all.length) return;
    var at = -1;
    all.forEach(function (x, i) { if (isSelected(x[0], x[1])) at = i; });
    var next = all[(at + step + all.length) % all.length];
    select(next[0], next[1]);
  }

  /* ------------------------------------------------------------ edits */
  function add(kind, label, geometry) {
    var s = { key: newKey(), id: newId(), kind: kind, label: label, geometry: geometry, deleted: false };
    change(function () { shapes.push(s); });
    if (kind !== "category") select("ann", s.key);
    return s;
  }
  // The shape the label field was opened on: a click elsewhere moves the selection before
  // the field's change event arrives, and the new label belongs to the shape it was for.
  var labelTarget = null;
  function relabel(label) {
    label = label.trim();
    if (!label) return;
    currentLabel = label;
    if (!cfg.colours[label]) cfg.colours[label] = "#e8590c";
    var s = labelTarget ? find(labelTarget) : null;
    if (s && s.deleted) s = null;
    if (s && s.label !== label) change(function () { find(s.key).label = label; });
    else render();
  }
  function removeSelected() {
    var s = selectedShape();
    if (!s) return;
    var v = selected.vertex;
    if (v != null && (s.kind === "polygon" || s.kind === "line")) {
      if (s.geometry.vertices.length > (s.kind === "polygon" ? 3 : 2)) {
        change(function () { find(s.key).geometry.vertices.splice(v, 1); });
        selected.vertex = null;
        return render();
      }
    }
    change(function () { find(s.key).deleted = true; });
    select(null);
  }
  function acceptPrediction() {
    var p = selectedPrediction();
    if (!p) return;
    add(p.kind, p.label, copy(p.geometry));
    setStatus("Accepted " + p.label + " as an annotation (unsaved)", "is-dirty");
  }
  function nudge(dx, dy) {
    var s = selectedShape();
    if (!s) return;
    change(function () {
      var t = find(s.key), v = selected.vertex;
      if (v != null && t.geometry.vertices) {
        var p = t.geometry.vertices[v];
        t.geometry.vertices[v] = [round(clamp(p[0] + dx, 0, W)), round(clamp(p[1] + dy, 0, H))];
      } else t.geometry = translate(t, t.geometry, dx, dy);
    });
  }
  // A new box in the middle of what is in view, for the keyboard (then arrows move it and
  // Alt+arrows size it).
  function addBoxInView() {
    var r = frame.getBoundingClientRect(), c = toImage({ clientX: r.left + r.width / 2, clientY: r.top + r.height / 2 });
    var side = Math.min(W, H) / 5 / view.s;
    add("box", currentLabel, boxFrom(c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2));
  }
  // A box's right and bottom edges moved by (dw, dh): the keyboard's resize.
  function resize(dw, dh) {
    var s = selectedShape();
    if (!s || s.kind !== "box") return;
    var g = s.geometry, b = boxFrom(g.x, g.y, g.x + g.width + dw, g.y + g.height + dh);
    if (b.width >= 1 && b.height >= 1) change(function () { find(s.key).geometry = b; });
  }
  function finishPolygon() {
    if (!draft || draft.kind !== "polygon") return;
    var v = draft.vertices.filter(function (p, i, all) { return !i || p[0] !== all[i - 1][0] || p[1] !== all[i - 1][1]; });
    draft = null;
    if (v.length >= 3) { add("polygon", currentLabel, { vertices: v }); setTool("select"); }
    else render();
  }
  function setTool(name) { tool = name; draft = null; render(); }

  /* ------------------------------------------------------------ pointer */
  function onDown(event) {
    if (event.button === 1 || (event.button === 0 && spaceDown)) return startPan(event);
    if (event.button !== 0) return;
    var p = toImage(event), t = event.target;
    svg.setPointerCapture(event.pointerId);
    if (tool === "box") { draft = { kind: "box", x0: p[0], y0: p[1], x1: p[0], y1: p[1] }; drag = { draw: true }; return render(); }
    if (tool === "polygon") {
      if (!draft) draft = { kind: "polygon", vertices: [] };
      var first = draft.vertices[0];
      if (first && draft.vertices.length >= 3 && Math.hypot(first[0] - p[0], first[1] - p[1]) * unit() < 8) return finishPolygon();
      draft.vertices.push([round(p[0]), round(p[1])]);
      return render();
    }
    var s = selectedShape();
    if (t.hasAttribute("data-handle") && s) {
      drag = { key: s.key, handle: t.getAttribute("data-handle"), start: p, g0: copy(s.geometry), before: copy(shapes) };
      return;
    }
    if (t.hasAttribute("data-vertex") && s) {
      var i = Number(t.getAttribute("data-vertex"));
      if (event.altKey) { selected.vertex = i; return removeSelected(); }
      selected.vertex = i;
      drag = { key: s.key, vertex: i, start: p, g0: copy(s.geometry), before: copy(shapes) };
      return render();
    }
    if (t.hasAttribute("data-edge") && s) {
      var at = Number(t.getAttribute("data-edge")) + 1, before = copy(shapes);
      s.geometry.vertices.splice(at, 0, [round(p[0]), round(p[1])]);
      selected.vertex = at;
      drag = { key: s.key, vertex: at, start: p, g0: copy(s.geometry), before: before, moved: true };
      return render();
    }
    var ann = t.closest("[data-key]"), pred = t.closest("[data-pred]");
    if (pred && !ann) return select("pred", "p" + pred.getAttribute("data-pred"));
    if (ann) {
      var key = ann.getAttribute("data-key");
      if (!isSelected("ann", key)) select("ann", key);
      else selected.vertex = null;
      drag = { key: key, start: p, g0: copy(find(key).geometry), before: copy(shapes) };
      return render();
    }
    select(null);
    if (view.s > 1) startPan(event);
  }
  function startPan(event) {
    event.preventDefault();
    drag = { pan: true, x: event.clientX, y: event.clientY, tx: view.tx, ty: view.ty };
    svg.setPointerCapture(event.pointerId);
    render();
  }
  function onMove(event) {
    if (draft && draft.kind === "polygon" && !drag) { draft.cursor = toImage(event).map(round); return render(); }
    if (!drag) return;
    if (drag.pan) {
      view.tx = drag.tx + event.clientX - drag.x; view.ty = drag.ty + event.clientY - drag.y;
      return applyView();
    }
    var p = toImage(event);
    if (drag.draw) { draft.x1 = p[0]; draft.y1 = p[1]; return render(); }
    var s = find(drag.key), dx = p[0] - drag.start[0], dy = p[1] - drag.start[1], g = drag.g0;
    if (Math.abs(dx) * unit() < 1 && Math.abs(dy) * unit() < 1 && !drag.moved) return;
    drag.moved = true;
    if (drag.handle) {
      var x0 = g.x, y0 = g.y, x1 = g.x + g.width, y1 = g.y + g.height, h = drag.handle;
      if (h.indexOf("w") >= 0) x0 += dx;
      if (h.indexOf("e") >= 0) x1 += dx;
      if (h.indexOf("n") >= 0) y0 += dy;
      if (h.indexOf("s") >= 0) y1 += dy;
      var b = boxFrom(x0, y0, x1, y1);
      if (b.width >= 1 && b.height >= 1) s.geometry = b;
    } else if (drag.vertex != null) {
      var v = g.vertices[drag.vertex];
      s.geometry.vertices[drag.vertex] = [round(clamp(v[0] + dx, 0, W)), round(clamp(v[1] + dy, 0, H))];
    } else s.geometry = translate(s, g, dx, dy);
    render();
  }
  function onUp() {
    var d = drag;
    drag = null;
    if (!d) return;
    if (d.draw) {
      var b = boxFrom(draft.x0, draft.y0, draft.x1, draft.y1);
      draft = null;
      if (b.width * unit() >= 3 && b.height * unit() >= 3) { add("box", currentLabel, b); setTool("select"); }
      else render();
      return;
    }
    if (d.moved && d.before) { undoStack.push(d.before); redoStack = []; }
    render();
  }

  /* ------------------------------------------------------------ saving */
  function csrf() { try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; } }
  function send(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrf(), "X-Nucleus-Source": "editor" } };
    if (body) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(url, init).then(function (r) {
      return (r.status === 204 ? Promise.resolve(null) : r.json().catch(function () { return null; })).then(function (json) { return { status: r.status, body: json }; });
    });
  }
  function stored(key, answer) {
    server[key] = { pk: answer.pk, version: answer.version, label: answer.label, geometry: copy(answer.geometry) };
    var s = find(key);
    if (s && s.label === answer.label && sameGeometry(s.geometry, answer.geometry)) s.geometry = copy(answer.geometry);
  }
  // One shape's pending change, sent; resolves to null or {key, conflict|error}.
  function saveOne(s) {
    var what = pending(s), srv = server[s.key];
    if (!what) return Promise.resolve(null);
    var request = what === "new" ? send("POST", cfg.createUrl, { id: s.id, kind: s.kind, label: s.label, geometry: s.geometry })
      : what === "deleted" ? send("DELETE", cfg.annotationUrl + srv.pk + "?version=" + srv.version)
      : send("PATCH", cfg.annotationUrl + srv.pk, { version: srv.version, label: s.label, geometry: s.geometry });
    return request.then(function (answer) {
      if (answer.status === 200 || answer.status === 201) { stored(s.key, answer.body); return null; }
      if (answer.status === 204 || (what === "deleted" && answer.status === 404)) {
        // Gone from the server; an undo that brings it back sends it again, as new.
        delete server[s.key];
        return null;
      }
      if (answer.status === 409 && answer.body && answer.body.current) return { key: s.key, conflict: answer.body.current };
      if (answer.status === 404) return { key: s.key, conflict: null };
      var err = answer.body && answer.body.error;
      return { key: s.key, error: err ? err.message : "HTTP " + answer.status };
    });
  }
  var saving = false;
  function save() {
    if (saving) return;
    saving = true;
    setStatus("Saving…");
    var problems = [];
    var queue = shapes.slice();
    (function next() {
      if (!queue.length) return done();
      saveOne(queue.shift()).then(function (p) { if (p) problems.push(p); next(); }, function (e) { problems.push({ error: String(e) }); next(); });
    })();
    function done() {
      saving = false;
      render();
      var conflict = problems.filter(function (p) { return "conflict" in p; })[0];
      var failure = problems.filter(function (p) { return p.error; })[0];
      if (conflict) return showConflict(conflict);
      if (failure) {
        if (failure.key) select("ann", failure.key);
        return setStatus("Not saved: " + failure.error, "is-error");
      }
      setStatus("Saved", "");
      if (cfg.next) { leaving = true; window.location.href = cfg.next; }
    }
  }
  function describe(geometry, kind) {
    var g = geometry || {}, text;
    if (kind === "box") text = "x " + round(g.x) + ", y " + round(g.y) + ", " + round(g.width) + " × " + round(g.height);
    else if (g.vertices) text = g.vertices.length + " vertices: " + g.vertices.slice(0, 4).map(function (p) { return "(" + round(p[0]) + ", " + round(p[1]) + ")"; }).join(" ") + (g.vertices.length > 4 ? " …" : "");
    else text = JSON.stringify(g);
    return text;
  }
  function showConflict(problem) {
    var s = find(problem.key), theirs = problem.conflict, rows = $("[data-conflict-rows]", conflictDialog);
    rows.innerHTML = "";
    $("[data-conflict-message]", conflictDialog).textContent = theirs
      ? "“" + (server[s.key] || {}).label + "” was changed by someone else after you opened it (it is now at version " + theirs.version + "). Your changes to it are not saved yet."
      : "“" + s.label + "” was deleted by someone else after you opened it.";
    [["Label", theirs ? theirs.label : "(deleted)", s.deleted ? "(deleted)" : s.label],
     ["Geometry", theirs ? describe(theirs.geometry, theirs.kind) : "(deleted)", s.deleted ? "(deleted)" : describe(s.geometry, s.kind)]].forEach(function (r) {
      var tr = document.createElement("tr");
      [r[0], r[1], r[2]].forEach(function (text, i) {
        var cell = document.createElement(i ? "td" : "th");
        cell.textContent = text;
        if (i && r[1] !== r[2]) cell.className = "differs";
        tr.appendChild(cell);
      });
      rows.appendChild(tr);
    });
    conflictDialog.setAttribute("data-key", problem.key);
    conflictDialog._problem = problem;
    select("ann", problem.key);
    setStatus("Not saved: a conflict", "is-error");
    conflictDialog.showModal();
  }
  function resolve(choice) {
    var problem = conflictDialog._problem, s = find(problem.key), theirs = problem.conflict;
    conflictDialog.close();
    setStatus("", "");
    if (choice === "reload") {
      change(function () {
        var t = find(s.key);
        if (theirs) { t.label = theirs.label; t.geometry = copy(theirs.geometry); t.deleted = false; }
        else shapes = shapes.filter(function (x) { return x.key !== s.key; });
      });
      if (theirs) stored(s.key, theirs); else delete server[s.key];
      render();
      if (dirty()) save();
      else setStatus("Reloaded their version", "");
      return;
    }
    // Overwrite: theirs is the version ours now replaces (gone: create ours again).
    if (theirs) server[s.key] = { pk: theirs.pk, version: theirs.version, label: theirs.label, geometry: copy(theirs.geometry) };
    else { delete server[s.key]; s.id = newId(); }
    save();
  }

  /* ------------------------------------------------------------ open, close, keys */
  function openEditor() {
    if (open) return;
    open = true;
    load();
    document.documentElement.classList.add("editing");
    bar.hidden = false; panel.hidden = false;
    svg = el("svg", { "class": "editor-svg", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "data-testid": "editor-svg", "aria-label": "Annotation editor canvas" });
    layer.appendChild(svg);
    svg.addEventListener("pointerdown", onDown);
    svg.addEventListener("pointermove", onMove);
    svg.addEventListener("pointerup", onUp);
    svg.addEventListener("pointercancel", onUp);
    svg.addEventListener("dblclick", function () { if (tool === "polygon") finishPolygon(); });
    frame.addEventListener("wheel", onWheel, { passive: false });
    applyView();
    var button = $("[data-editor-open]");
    if (button) button.hidden = true;
  }
  function closeEditor() {
    if (dirty() && !window.confirm("Leave the editor and drop your unsaved changes?")) return;
    leaving = true;
    var url = new URL(window.location.href);
    url.searchParams.delete("edit");
    window.location.href = url.toString(); // the page draws what is saved now
  }
  function onWheel(event) {
    event.preventDefault();
    var r = frame.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.clientX - r.left, event.clientY - r.top);
  }
  function typing(t) { return t && (t.tagName === "INPUT" && !/^(checkbox|button|submit)$/.test(t.type) || t.tagName === "TEXTAREA" || t.tagName === "SELECT"); }
  function onKey(event) {
    if (!open || $("dialog[open]")) return;
    var k = event.key, mod = event.ctrlKey || event.metaKey;
    if (mod && (k === "s" || k === "S")) { event.preventDefault(); return save(); }
    if (typing(event.target)) return;
    var handled = true;
    if (mod && (k === "z" || k === "Z")) event.shiftKey ? redo() : undo();
    else if (mod && (k === "y" || k === "Y")) redo();
    else if (event.altKey && k.indexOf("Arrow") === 0) {
      var by = event.shiftKey ? 10 : 1;
      resize(k === "ArrowLeft" ? -by : k === "ArrowRight" ? by : 0, k === "ArrowUp" ? -by : k === "ArrowDown" ? by : 0);
    }
    else if (mod || event.altKey) handled = false;
    else if (k === "v" || k === "V") setTool("select");
    else if (k === "b" || k === "B") setTool("box");
    else if (k === "p" || k === "P") setTool("polygon");
    else if (k === "Escape") { if (draft) { draft = null; render(); } else select(null); }
    else if (k === "Enter" && draft) finishPolygon();
    else if (k === "Delete" || k === "Backspace") { if (draft && draft.vertices) { draft.vertices.pop(); render(); } else removeSelected(); }
    else if (k.indexOf("Arrow") === 0) {
      var step = event.shiftKey ? 10 : 1;
      nudge(k === "ArrowLeft" ? -step : k === "ArrowRight" ? step : 0, k === "ArrowUp" ? -step : k === "ArrowDown" ? step : 0);
    }
    else if (k === "n" || k === "N") addBoxInView();
    else if (k === "]") cycle(1);
    else if (k === "[") cycle(-1);
    else if (k === "l" || k === "L") { labelInput.focus(); labelInput.select(); }
    else if (k === "c" || k === "C") categoryInput.focus();
    else if (k === "a" || k === "A") acceptPrediction();
    else if (k === "h" || k === "H") { var box = $("[data-action=predictions]", bar); box.checked = !box.checked; showPredictions = box.checked; render(); }
    else if (k === "+" || k === "=") zoomCentre(1.25);
    else if (k === "-") zoomCentre(0.8);
    else if (k === "0") { view = { s: 1, tx: 0, ty: 0 }; applyView(); }
    else if (k === "?") $("#editor-help").showModal();
    else if (k === " ") { spaceDown = true; }
    else handled = false;
    if (handled) { event.preventDefault(); event.stopPropagation(); }
  }

  function wire() {
    bar.addEventListener("click", function (event) {
      var b = event.target.closest("button");
      if (!b) return;
      var toolName = b.getAttribute("data-tool"), action = b.getAttribute("data-action");
      if (toolName) setTool(toolName);
      else if (action === "undo") undo();
      else if (action === "redo") redo();
      else if (action === "zoom-in") zoomCentre(1.25);
      else if (action === "zoom-out") zoomCentre(0.8);
      else if (action === "zoom-fit") { view = { s: 1, tx: 0, ty: 0 }; applyView(); }
      else if (action === "help") $("#editor-help").showModal();
      else if (action === "close") closeEditor();
      else if (action === "save") save();
    });
    $("[data-action=predictions]", bar).addEventListener("change", function (event) { showPredictions = event.target.checked; render(); });
    panel.addEventListener("click", function (event) {
      var b = event.target.closest("button");
      if (!b) return;
      if (b.getAttribute("data-action") === "delete") removeSelected();
      else if (b.getAttribute("data-action") === "accept") acceptPrediction();
      else if (b.hasAttribute("data-select")) select("ann", b.getAttribute("data-select"));
      else if (b.hasAttribute("data-remove")) { var key = b.getAttribute("data-remove"); change(function () { find(key).deleted = true; }); }
    });
    labelInput.addEventListener("focus", function () { var s = selectedShape(); labelTarget = s ? s.key : null; });
    labelInput.addEventListener("change", function () { relabel(labelInput.value); });
    labelInput.addEventListener("input", function (event) {
      // A label picked from the type-ahead's list applies at once.
      if (!event.inputType || event.inputType === "insertReplacementText") relabel(labelInput.value);
    });
    labelInput.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); relabel(labelInput.value); labelInput.blur(); }
      else if (event.key === "Escape") { labelInput.blur(); render(); }
    });
    $("[data-editor-category-form]", panel).addEventListener("submit", function (event) {
      event.preventDefault();
      var label = categoryInput.value.trim();
      if (!label) return;
      if (!cfg.colours[label]) cfg.colours[label] = "#e8590c";
      add("category", label, {});
      categoryInput.value = "";
    });
    $$("[data-conflict]", conflictDialog).forEach(function (b) { b.addEventListener("click", function () { resolve(b.getAttribute("data-conflict")); }); });
    $$("[data-dialog-close]").forEach(function (b) { b.addEventListener("click", function () { b.closest("dialog").close(); }); });
    window.addEventListener("keydown", onKey, true);
    window.addEventListener("keyup", function (event) { if (event.key === " ") spaceDown = false; });
    window.addEventListener("resize", function () { if (open) applyView(); });
    window.addEventListener("beforeunload", function (event) { if (open && dirty() && !leaving) { event.preventDefault(); event.returnValue = ""; } });
    var button = $("[data-editor-open]");
    if (button) button.addEventListener("click", openEditor);
    document.addEventListener("keydown", function (event) {
      if (!open && (event.key === "e" || event.key === "E") && !typing(event.target) && !event.ctrlKey && !event.metaKey && !event.altKey) { event.preventDefault(); openEditor(); }
    });
    if (bar.getAttribute("data-open") === "1") openEditor();
  }
  var leaving = false;
  document.addEventListener("DOMContentLoaded", wire);
})();
