// The embedding map (templates/ui/embedding_map.html; docs/ui.md, "Embedding map").
// Points arrive as binary arrays (embeddings/map_ui.py: uint32 header length, JSON header,
// padding to 8, then the arrays), are drawn pixel by pixel into one ImageData (a million
// points redraw in tens of milliseconds), and are found under the pointer through a grid
// index of cells in map coordinates. No build step and no outside script.
(function () {
  "use strict";
  const canvas = document.getElementById("map-canvas");
  if (!canvas) return;
  const ctx = canvas.getContext("2d");
  const status = document.getElementById("map-status");
  const hover = document.getElementById("map-hover");
  const selectionBar = document.getElementById("map-selection");
  const PALETTE = [
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
  ];
  const BASE = [70, 110, 200];
  const MISSING = [200, 200, 200];

  const state = {
    ready: false, count: 0, ids: null, xs: null, ys: null, bounds: [0, 0, 1, 1],
    colors: null, highlight: null, selected: null, selectedCount: 0, polygon: null,
    scale: 1, ox: 0, oy: 0, index: null, drawing: null, tool: "pan",
  };
  window.nucleusMap = state;

  function unframe(buffer) {
    const n = new DataView(buffer).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
    const start = 4 + n + ((8 - ((4 + n) % 8)) % 8);
    return { header: header, start: start, buffer: buffer };
  }

  async function fetchBinary(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) {
      let message = response.status + "";
      try { message = (await response.json()).detail || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return unframe(await response.arrayBuffer());
  }

  // ------------------------------------------------------------------ view transform
  function size() {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return ratio;
  }
  function fit() {
    size();
    const [x0, y0, x1, y1] = state.bounds;
    const w = Math.max(x1 - x0, 1e-9), h = Math.max(y1 - y0, 1e-9);
    state.scale = 0.85 * Math.min(canvas.width / w, canvas.height / h);
    state.ox = canvas.width / 2 - state.scale * (x0 + x1) / 2;
    state.oy = canvas.height / 2 + state.scale * (y0 + y1) / 2;
  }
  // Screen (CSS pixels, relative to the canvas) <-> map coordinates; y grows upwards.
  state.toScreen = function (x, y) {
    const ratio = window.devicePixelRatio || 1;
    return [(state.ox + state.scale * x) / ratio, (state.oy - state.scale * y) / ratio];
  };
  function toMap(sx, sy) {
    const ratio = window.devicePixelRatio || 1;
    return [(sx * ratio - state.ox) / state.scale, (state.oy - sy * ratio) / state.scale];
  }

  // ------------------------------------------------------------------------ drawing
  function colourOf(i) {
    const c = state.colors;
    if (!c) return BASE;
    if (c.kind === "numeric") {
      const v = c.values[i];
      if (!Number.isFinite(v)) return MISSING;
      const [lo, hi] = c.range || [0, 1];
      const t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
      return [Math.round(40 + 215 * t), Math.round(60 + 80 * (1 - Math.abs(2 * t - 1))), Math.round(230 - 200 * t)];
    }
    const code = c.values[i];
    return code === 0 ? MISSING : PALETTE[(code - 1) % PALETTE.length];
  }

  function draw() {
    size();
    const w = canvas.width, h = canvas.height;
    const image = ctx.createImageData(w, h);
    const data = image.data;
    const dot = state.count > 200000 ? 1 : state.count > 20000 ? 2 : 3;
    const dimmed = state.highlight !== null;
    function plot(i, rgb, d) {
      const px = Math.round(state.ox + state.scale * state.xs[i]);
      const py = Math.round(state.oy - state.scale * state.ys[i]);
      for (let dy = 0; dy < d; dy++) {
        const yy = py + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = 0; dx < d; dx++) {
          const xx = px + dx;
          if (xx < 0 || xx >= w) continue;
          const at = 4 * (yy * w + xx);
          data[at] = rgb[0]; data[at + 1] = rgb[1]; data[at + 2] = rgb[2]; data[at + 3] = 255;
        }
      }
    }
    const lit = (i) => !dimmed || (state.highlight[i >> 3] >> (i & 7)) & 1;
    for (let i = 0; i < state.count; i++) if (!lit(i)) plot(i, [225, 225, 225], dot);
    for (let i = 0; i < state.count; i++) if (lit(i)) plot(i, colourOf(i), dot);
    if (state.selected) {
      for (let i = 0; i < state.count; i++) if (state.selected[i]) plot(i, [0, 0, 0], dot + 1);
    }
    ctx.putImageData(image, 0, 0);
    const path = state.drawing || state.polygon;
    if (path && path.length > 1) {
      ctx.beginPath();
      path.forEach(([x, y], k) => {
        const sx = state.ox + state.scale * x, sy = state.oy - state.scale * y;
        if (k === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
      });
      ctx.closePath();
      ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2; ctx.stroke();
      ctx.fillStyle = "rgba(228, 87, 46, 0.08)"; ctx.fill();
    }
  }
  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  // --------------------------------------------------------------------- grid index
  const CELLS = 256;
  function buildIndex() {
    const [x0, y0, x1, y1] = state.bounds;
    const cw = Math.max(x1 - x0, 1e-9) / CELLS, ch = Math.max(y1 - y0, 1e-9) / CELLS;
    const cellOf = new Int32Array(state.count);
    const starts = new Int32Array(CELLS * CELLS + 1);
    for (let i = 0; i < state.count; i++) {
      const cx = Math.min(CELLS - 1, Math.max(0, Math.floor((state.xs[i] - x0) / cw)));
      const cy = Math.min(CELLS - 1, Math.max(0, Math.floor((state.ys[i] - y0) / ch)));
      cellOf[i] = cy * CELLS + cx;
      starts[cellOf[i] + 1]++;
    }
    for (let c = 0; c < CELLS * CELLS; c++) starts[c + 1] += starts[c];
    const fill = starts.slice(0, CELLS * CELLS);
    const order = new Int32Array(state.count);
    for (let i = 0; i < state.count; i++) order[fill[cellOf[i]]++] = i;
    state.index = { x0, y0, cw, ch, starts, order };
  }
  function nearest(mx, my, radius) {
    const g = state.index;
    if (!g) return -1;
    const cx0 = Math.floor((mx - radius - g.x0) / g.cw), cx1 = Math.floor((mx + radius - g.x0) / g.cw);
    const cy0 = Math.floor((my - radius - g.y0) / g.ch), cy1 = Math.floor((my + radius - g.y0) / g.ch);
    let best = -1, bestD = radius * radius;
    for (let cy = Math.max(0, cy0); cy <= Math.min(CELLS - 1, cy1); cy++) {
      for (let cx = Math.max(0, cx0); cx <= Math.min(CELLS - 1, cx1); cx++) {
        const c = cy * CELLS + cx;
        for (let k = g.starts[c]; k < g.starts[c + 1]; k++) {
          const i = g.order[k];
          const dx = state.xs[i] - mx, dy = state.ys[i] - my, d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  // -------------------------------------------------------------------- selection
  function inside(polygon) {
    // Even-odd rule, as embeddings/projection.py's points_in_polygon.
    const out = new Uint8Array(state.count);
    let n = 0;
    for (let i = 0; i < state.count; i++) {
      const x = state.xs[i], y = state.ys[i];
      let c = false;
      for (let a = 0, b = polygon.length - 1; a < polygon.length; b = a++) {
        const [xa, ya] = polygon[a], [xb, yb] = polygon[b];
        if (ya !== yb && (ya > y) !== (yb > y) && x < (xb - xa) * (y - ya) / (yb - ya) + xa) c = !c;
      }
      if (c) { out[i] = 1; n++; }
    }
    state.selectedCount = n;
    return out;
  }
  function select(polygon) {
    state.polygon = polygon;
    state.selected = inside(polygon);
    document.getElementById("map-selected-count").textContent = state.selectedCount;
    selectionBar.hidden = false;
    redraw();
  }
  function clearSelection() {
    state.polygon = null; state.selected = null; state.selectedCount = 0;
    selectionBar.hidden = true;
    redraw();
  }
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }
  async function apply(action) {
    const name = (document.getElementById("map-name") || {}).value || "";
    if (action !== "grid" && !name.trim() && action === "tag") { status.textContent = "Name the tag first."; return; }
    const response = await fetch(canvas.dataset.select, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ polygon: state.polygon, action: action, name: name }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { status.textContent = body.detail || body.message || ("error " + response.status); return; }
    if (action === "tag") {
      status.textContent = body.count + " items selected; " + body.added + " newly tagged " + body.name + ".";
      return;
    }
    window.location.href = body.url;
  }
  selectionBar.addEventListener("click", (event) => {
    const action = event.target.dataset && event.target.dataset.action;
    if (action === "clear") clearSelection();
    else if (action) apply(action);
  });

  // ------------------------------------------------------------------ interaction
  document.querySelectorAll('input[name="map-tool"]').forEach((radio) => {
    radio.addEventListener("change", () => { state.tool = radio.value; });
  });
  let drag = null;
  function local(event) {
    const r = canvas.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  }
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const ratio = window.devicePixelRatio || 1;
    const [sx, sy] = local(event);
    const factor = Math.exp(-event.deltaY * 0.0015);
    state.ox = sx * ratio - (sx * ratio - state.ox) * factor;
    state.oy = sy * ratio - (sy * ratio - state.oy) * factor;
    state.scale *= factor;
    redraw();
  }, { passive: false });
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.ready) return;
    canvas.setPointerCapture(event.pointerId);
    const [sx, sy] = local(event);
    drag = { sx, sy, ox: state.ox, oy: state.oy, start: toMap(sx, sy) };
    if (state.tool !== "pan") state.drawing = [drag.start];
  });
  canvas.addEventListener("pointermove", (event) => {
    const [sx, sy] = local(event);
    if (drag) {
      const ratio = window.devicePixelRatio || 1;
      if (state.tool === "pan") {
        state.ox = drag.ox + (sx - drag.sx) * ratio;
        state.oy = drag.oy + (sy - drag.sy) * ratio;
      } else if (state.tool === "lasso") {
        state.drawing.push(toMap(sx, sy));
      } else {
        const [ax, ay] = drag.start, [bx, by] = toMap(sx, sy);
        state.drawing = [[ax, ay], [bx, ay], [bx, by], [ax, by]];
      }
      hover.hidden = true;
      redraw();
      return;
    }
    if (!state.ready) return;
    const [mx, my] = toMap(sx, sy);
    const i = nearest(mx, my, 8 * (window.devicePixelRatio || 1) / state.scale);
    if (i < 0) { hover.hidden = true; return; }
    const id = state.ids[i];
    const img = hover.querySelector("img");
    const src = canvas.dataset.thumb.replace("/0/", "/" + id + "/");
    if (img.getAttribute("src") !== src) { img.hidden = false; img.setAttribute("src", src); }
    img.onerror = () => { img.hidden = true; };
    hover.querySelector("span").textContent = "item " + id;
    hover.dataset.item = id;
    hover.style.left = (sx + 12) + "px";
    hover.style.top = (sy + 12) + "px";
    hover.hidden = false;
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!drag) return;
    const path = state.drawing;
    state.drawing = null;
    drag = null;
    if (path && path.length >= 3) select(path);
    else redraw();
  });
  canvas.addEventListener("dblclick", (event) => {
    const [mx, my] = toMap(...local(event));
    const i = nearest(mx, my, 8 * (window.devicePixelRatio || 1) / state.scale);
    if (i >= 0) window.location.href = canvas.dataset.item.replace("/0", "/" + state.ids[i]);
  });
  window.addEventListener("resize", redraw);

  // ------------------------------------------------------------------- colours
  const colourInput = document.getElementById("map-color");
  const legend = document.getElementById("map-legend");
  async function colourBy(text) {
    if (!text) { state.colors = null; legend.textContent = ""; redraw(); return; }
    try {
      const got = await fetchBinary(canvas.dataset.colors + "&color=" + encodeURIComponent(text));
      const h = got.header;
      const values = h.kind === "numeric"
        ? new Float32Array(got.buffer, got.start, h.count)
        : new Uint8Array(got.buffer, got.start, h.count);
      state.colors = { kind: h.kind, values: values, range: h.range };
      legend.replaceChildren();
      if (h.kind === "numeric") {
        legend.textContent = h.range ? (h.range[0] + " (blue) … " + h.range[1] + " (red)") : "no values";
      } else {
        h.legend.slice(0, 20).forEach((label, k) => {
          const c = PALETTE[k % PALETTE.length];
          const chip = document.createElement("span");
          chip.style.marginRight = "8px";
          chip.innerHTML = '<span style="display:inline-block;width:10px;height:10px;background:rgb(' + c.join(",") + ')"></span> ';
          chip.append(label);
          legend.append(chip);
        });
      }
      status.textContent = "";
    } catch (error) {
      status.textContent = "Colour: " + error.message;
    }
    redraw();
  }
  if (colourInput) colourInput.addEventListener("change", () => colourBy(colourInput.value.trim()));

  // ------------------------------------------------------------------------ load
  async function load() {
    status.textContent = "Loading points…";
    try {
      const got = await fetchBinary(canvas.dataset.points);
      const h = got.header;
      state.count = h.count;
      state.bounds = h.bounds;
      state.ids = h.id_type === "uint32"
        ? new Uint32Array(got.buffer, got.start, h.count)
        : new Float64Array(got.buffer, got.start, h.count);
      const xy = new Float32Array(got.buffer, got.start + state.ids.byteLength, 2 * h.count);
      state.xs = new Float32Array(h.count);
      state.ys = new Float32Array(h.count);
      for (let i = 0; i < h.count; i++) { state.xs[i] = xy[2 * i]; state.ys[i] = xy[2 * i + 1]; }
      buildIndex();
      fit();
      // The grid view to highlight: ?grid= on this page, else the dataset's grid page this
      // one was opened from (the header's Map tab), with its filters.
      let grid = canvas.dataset.grid;
      if (!grid && document.referrer) {
        const from = new URL(document.referrer);
        if (from.origin === window.location.origin && from.pathname === canvas.dataset.gridPath) {
          grid = from.search.replace(/^\?/, "");
        }
      }
      if (grid) {
        const mask = await fetchBinary(canvas.dataset.highlight + "&grid=" + encodeURIComponent(grid));
        if (mask.header.filtered) {
          state.highlight = new Uint8Array(mask.buffer, mask.start);
          status.textContent = mask.header.matching + " of " + h.count + " points in the grid view.";
        }
      }
      if (!status.textContent || status.textContent === "Loading points…") status.textContent = h.count + " points.";
      state.ready = true;
      canvas.dataset.ready = "1";
      draw();
    } catch (error) {
      status.textContent = "Could not load the map: " + error.message;
    }
  }
  load();
})();
