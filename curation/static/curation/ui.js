/* nucleus UI: the little JavaScript the pages need. Everything works as plain links and
   forms first; this adds selection, keyboard moves, drag-and-drop and live feedback. */
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  // Whether a key press belongs to a field (typing, choosing): page shortcuts stay out.
  function typing(event) {
    var t = event.target;
    if (!t) return false;
    if (t.tagName === "INPUT") return !/^(checkbox|button|submit|reset|file)$/.test(t.type);
    return t.isContentEditable || /^(TEXTAREA|SELECT)$/.test(t.tagName);
  }

  /* ------------------------------------------------------------ small behaviours */
  function wireForms() {
    document.addEventListener("change", function (event) {
      var el = event.target;
      if (el.matches && el.matches("[data-autosubmit]") && el.form) {
        if (el.type === "file" && !el.files.length) return;
        el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit();
      }
    });
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) event.preventDefault();
    }, true);
    document.addEventListener("click", function (event) {
      var copy = event.target.closest("[data-copy]");
      if (copy && navigator.clipboard) {
        navigator.clipboard.writeText(copy.getAttribute("data-copy"));
        copy.textContent = "Copied";
      }
      var ingest = event.target.closest("[data-ingest-toggle]");
      if (ingest) {
        var row = document.getElementById("ingest-" + ingest.getAttribute("data-ingest-toggle"));
        if (row) {
          event.preventDefault();
          row.hidden = !row.hidden;
          if (!row.hidden) { var first = $("input[name=path]", row); if (first) first.focus(); }
        }
      }
    });
  }

  /* ------------------------------------------------------------ clamped text */
  // A description clamped to two lines in a list gets a "more" button, only when it
  // overflows; the button opens it whole and closes it again.
  function wireClamps() {
    function mark() {
      $$("[data-clamp]").forEach(function (el) {
        var button = el.nextElementSibling;
        if (!button || !button.matches("[data-clamp-toggle]")) return;
        button.hidden = !el.classList.contains("is-open") && el.scrollHeight <= el.clientHeight + 1;
      });
    }
    document.addEventListener("click", function (event) {
      var button = event.target.closest("[data-clamp-toggle]");
      if (!button) return;
      var el = button.previousElementSibling;
      var open = el.classList.toggle("is-open");
      button.textContent = open ? "less" : "more";
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.body.addEventListener("htmx:afterSwap", mark);
    window.addEventListener("resize", mark);
    mark();
  }

  /* ------------------------------------------------------------ query bar */
  function wireQueryBar() {
    var input = $("#query-input");
    if (!input) return;
    function mirror() { return $("#query-mirror"); }
    function sync() {
      var m = mirror();
      if (!m) return;
      m.scrollLeft = input.scrollLeft;
      // An underline only means something for the text it was computed for.
      var mark = $("mark", m);
      if (mark) m.style.visibility = m.textContent.replace(/\u00a0$/, "") === input.value ? "visible" : "hidden";
    }
    input.addEventListener("scroll", sync);
    input.addEventListener("input", sync);
    input.addEventListener("keyup", sync);
    document.body.addEventListener("htmx:afterSwap", sync);
    document.body.addEventListener("htmx:oobAfterSwap", sync);
    sync();
    var list = $("#query-suggestions");
    var url = input.getAttribute("data-complete-url");
    if (list && url) wireCompletion(input, list, url);
  }

  /* Completion of the name at the cursor: a listbox under the query bar (arrows move,
     Enter or Tab accept, Esc closes, Ctrl+Space asks), answered by .../query/complete. */
  function wireCompletion(input, list, url) {
    var items = [], active = -1, span = null, asked = 0, timer = null, accepting = false;
    function close() {
      list.hidden = true;
      list.innerHTML = "";
      items = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }
    function highlight(index) {
      active = index;
      items.forEach(function (li, i) { li.setAttribute("aria-selected", i === index ? "true" : "false"); });
      input.setAttribute("aria-activedescendant", items[index].id);
      if (items[index].scrollIntoView) items[index].scrollIntoView({ block: "nearest" });
    }
    function accept(index) {
      var text = items[index].getAttribute("data-text");
      var value = input.value;
      input.value = value.slice(0, span.start) + text + value.slice(span.end);
      var caret = span.start + text.length;
      input.setSelectionRange(caret, caret);
      close();
      accepting = true; // the check and the mirror follow the new text; no new list
      input.dispatchEvent(new Event("input", { bubbles: true }));
      accepting = false;
      input.focus();
    }
    function show(answer) {
      close();
      span = { start: answer.start, end: answer.end };
      answer.suggestions.forEach(function (s, i) {
        var li = document.createElement("li");
        li.id = "query-suggestion-" + i;
        li.className = "query-suggestion";
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.setAttribute("data-text", s.text);
        var name = document.createElement("span");
        name.textContent = s.label;
        var kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = s.kind;
        li.appendChild(name);
        li.appendChild(kind);
        // mousedown, not click: the input must not lose focus (blur closes the list).
        li.addEventListener("mousedown", function (event) { event.preventDefault(); accept(i); });
        list.appendChild(li);
        items.push(li);
      });
      if (!items.length) return;
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(0);
    }
    function ask() {
      var mine = ++asked;
      var value = input.value;
      var params = new URLSearchParams({ query: value, pos: String(input.selectionStart) });
      fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) {
          // Only an answer for the text as it still is may change it.
          if (mine !== asked || input.value !== value || document.activeElement !== input) return;
          if (answer) show(answer); else close();
        })
        .catch(close);
    }
    input.addEventListener("input", function () {
      if (accepting) return;
      close(); // its span was for the text before this change
      clearTimeout(timer);
      timer = setTimeout(ask, 120);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === " " && event.ctrlKey) { event.preventDefault(); ask(); return; }
      if (list.hidden || !items.length) return;
      if (event.key === "ArrowDown") { event.preventDefault(); highlight((active + 1) % items.length); }
      else if (event.key === "ArrowUp") { event.preventDefault(); highlight((active - 1 + items.length) % items.length); }
      else if ((event.key === "Enter" || event.key === "Tab") && active >= 0) { event.preventDefault(); accept(active); }
      else if (event.key === "Escape") { event.preventDefault(); close(); }
    });
    input.addEventListener("blur", function () { asked++; close(); });
  }

  /* ------------------------------------------------------------ grid selection + keys */
  function wireGrid() {
    var grid = $("#tiles");
    if (!grid) return;
    var tiles = $$(".tile", grid);
    var form = $("#selection-form");
    var selected = new Set();
    var anchor = null;
    var allMatching = false;
    var focusIndex = 0;

    function render() {
      tiles.forEach(function (tile) {
        var on = allMatching || selected.has(tile.dataset.id);
        tile.classList.toggle("selected", on);
        tile.setAttribute("aria-selected", on ? "true" : "false");
      });
      grid.classList.toggle("selecting", selected.size > 0 || allMatching);
      if (!form) return;
      var count = $("[data-sel-count]", form);
      if (allMatching) {
        var counted = $("#view-count [data-count]");
        count.textContent = "All " + (counted ? counted.textContent : "matching items") + " selected";
      } else {
        count.textContent = selected.size + " selected";
      }
      form.hidden = !(selected.size || allMatching);
      form.elements.ids.value = Array.from(selected).join(",");
      form.elements.scope.value = allMatching ? "view" : "ids";
    }
    function toggle(index, range) {
      allMatching = false;
      var id = tiles[index].dataset.id;
      if (range && anchor !== null) {
        var lo = Math.min(anchor, index), hi = Math.max(anchor, index);
        for (var i = lo; i <= hi; i++) selected.add(tiles[i].dataset.id);
      } else {
        if (selected.has(id)) selected.delete(id); else selected.add(id);
        anchor = index;
      }
      render();
    }
    function focus(index) {
      if (index < 0 || index >= tiles.length) return;
      tiles[focusIndex].setAttribute("tabindex", "-1");
      tiles[focusIndex].classList.remove("focused");
      focusIndex = index;
      tiles[index].setAttribute("tabindex", "0");
      tiles[index].focus({ preventScroll: false });
    }
    function columns() {
      var top = tiles[0].offsetTop, n = 0;
      while (n < tiles.length && tiles[n].offsetTop === top) n++;
      return Math.max(n, 1);
    }

    grid.addEventListener("click", function (event) {
      var tile = event.target.closest(".tile");
      if (!tile) return;
      var link = event.target.closest("a");
      // Links in the footer (open, find similar) and modified clicks behave as links.
      if (link && !link.classList.contains("tile-media")) return;
      if (event.metaKey || event.ctrlKey || event.button !== 0) return;
      event.preventDefault();
      var index = tiles.indexOf(tile);
      focus(index);
      toggle(index, event.shiftKey);
    });
    // The skip link lands on the tile that holds the grid's one tab stop.
    var skip = $("[data-skip-to-tiles]");
    if (skip) skip.addEventListener("click", function (event) { event.preventDefault(); focus(focusIndex); });
    grid.addEventListener("dblclick", function (event) {
      var tile = event.target.closest(".tile");
      if (tile) window.location.href = tile.dataset.open;
    });
    grid.addEventListener("mousedown", function (event) {
      if (event.shiftKey) event.preventDefault(); // no text selection on shift-click
    });
    grid.addEventListener("focusin", function (event) {
      var tile = event.target.closest(".tile");
      if (tile) focusIndex = tiles.indexOf(tile);
    });
    document.addEventListener("keydown", function (event) {
      if (typing(event) || event.altKey || event.metaKey || event.ctrlKey) return;
      var inGrid = grid.contains(document.activeElement);
      var moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
      if (event.key in moves) {
        event.preventDefault();
        focus(inGrid ? Math.min(Math.max(focusIndex + moves[event.key], 0), tiles.length - 1) : focusIndex);
        if (event.shiftKey && anchor !== null) toggle(focusIndex, true);
      } else if (event.key === " " && inGrid) {
        event.preventDefault();
        toggle(focusIndex, event.shiftKey);
      } else if (event.key === "Enter" && inGrid) {
        event.preventDefault();
        window.location.href = tiles[focusIndex].dataset.open;
      } else if (event.key === "Escape") {
        selected.clear(); allMatching = false; render();
      } else if (event.key === "/") {
        var q = $("#query-input");
        if (q) { event.preventDefault(); q.focus(); }
      }
    });

    if (form) {
      $("[data-select-page]", form).addEventListener("click", function () {
        allMatching = false;
        tiles.forEach(function (t) { if (!t.classList.contains("is-query")) selected.add(t.dataset.id); });
        render();
      });
      var all = $("[data-select-all]", form);
      if (all) all.addEventListener("click", function () { allMatching = true; render(); });
      // The view's count arrives by htmx after the page: "select all" clicked before it
      // names the count once it is known.
      document.body.addEventListener("htmx:afterSwap", function (event) {
        var target = event.detail && event.detail.target;
        if (allMatching && target && target.id === "view-count") render();
      });
      $("[data-select-clear]", form).addEventListener("click", function () {
        selected.clear(); allMatching = false; render();
      });
      form.addEventListener("submit", function (event) {
        var button = event.submitter;
        if (button && button.dataset.slice) form.elements.slice.value = button.dataset.slice;
      });
    }
    render();
  }

  /* ------------------------------------------------------------ search by image drop */
  function wireImageDrop() {
    var form = $("#image-search");
    var zone = $(".workspace-main");
    if (!form || !zone) return;
    var input = $("input[type=file]", form);
    if (input.disabled) return;
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        if (!event.dataTransfer || Array.prototype.indexOf.call(event.dataTransfer.types, "Files") < 0) return;
        event.preventDefault();
        zone.classList.add("drop-target");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("drop-target"); });
    });
    zone.addEventListener("drop", function (event) {
      var files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      event.preventDefault();
      input.files = files;
      form.submit();
    });
  }

  /* ------------------------------------------------------------ item view */
  function wireItem() {
    var overlay = $("#item-overlay");
    if (overlay) {
      var tip = $("#shape-tip");
      document.addEventListener("change", function (event) {
        var box = event.target;
        if (!box.matches || !box.matches("[data-toggle-label]")) return;
        $$(".shape", overlay).forEach(function (shape) {
          if (shape.dataset.label === box.dataset.toggleLabel && shape.dataset.source === box.dataset.toggleSource) {
            shape.classList.toggle("off", !box.checked);
          }
        });
      });
      overlay.addEventListener("mousemove", function (event) {
        var shape = event.target.closest(".shape");
        if (!shape) { tip.hidden = true; return; }
        tip.textContent = shape.dataset.label + (shape.dataset.source === "pred" ? " (prediction)" : "");
        if (shape.dataset.confidence) {
          var conf = document.createElement("span");
          conf.className = "conf";
          conf.textContent = shape.dataset.confidence;
          tip.appendChild(conf);
        }
        tip.hidden = false;
        tip.style.left = event.clientX + 12 + "px";
        tip.style.top = event.clientY + 12 + "px";
      });
      overlay.addEventListener("mouseleave", function () { tip.hidden = true; });
    }
    document.addEventListener("keydown", function (event) {
      if (typing(event) || event.altKey || event.metaKey || event.ctrlKey) return;
      // The annotation editor (editor.js) has keys of its own while it is open.
      if (document.documentElement.classList.contains("editing")) return;
      var target = null;
      if (event.key === "ArrowRight") target = $("[data-key-next]");
      else if (event.key === "ArrowLeft") target = $("[data-key-prev]");
      else if (event.key === "Escape" || event.key === "Backspace") target = $("[data-key-back]");
      if (target && target.href) { event.preventDefault(); window.location.href = target.href; }
    });
  }

  /* ------------------------------------------------------------ facets drawer */
  // Below 800px the facets sidebar is an off-canvas drawer (ui.css): the "Filters" button
  // opens it, and its close button, the backdrop or Escape close it, giving focus back.
  // Open, it is modal; on a wide screen the button is hidden and it is never open.
  function wireDrawer() {
    var drawer = $("[data-drawer]");
    var toggle = $("[data-drawer-toggle]");
    var backdrop = $(".drawer-backdrop");
    if (!drawer || !toggle) return;
    // While it is open the rest of the page is inert (no focus, no clicks) and does not scroll.
    var rest = $$("body > *:not(main):not(script), main > *:not([data-drawer]):not(.drawer-backdrop)");
    function set(open) {
      drawer.classList.toggle("is-open", open);
      document.documentElement.classList.toggle("drawer-open", open);
      rest.forEach(function (el) { el.inert = open; });
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (backdrop) backdrop.hidden = !open;
      if (open) { var first = $("[data-drawer-close]", drawer); if (first) first.focus(); }
    }
    function isOpen() { return drawer.classList.contains("is-open"); }
    toggle.addEventListener("click", function () { set(!isOpen()); });
    document.addEventListener("click", function (event) {
      if (isOpen() && event.target.closest("[data-drawer-close]")) { set(false); toggle.focus(); }
    });
    // Capturing on window: Escape closes the drawer before the grid would clear the selection.
    window.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && isOpen()) {
        event.stopPropagation();
        set(false);
        toggle.focus();
      }
    }, true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireForms();
    wireClamps();
    wireQueryBar();
    wireGrid();
    wireImageDrop();
    wireDrawer();
    if ($(".item-layout")) wireItem();
  });
})();
