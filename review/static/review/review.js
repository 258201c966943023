/* The review screen's keyboard (docs/review.md): j/→ next, k/← previous, a accept,
   A accept and add the prediction as an annotation, c corrected (after editing), r reject (1–9 picks a reason, Enter
   confirms, Escape cancels), s skip, e edit the item, u undo. And the queue form's
   source fields. Plain JS, no dependencies. */
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function typing(event) {
    var t = event.target;
    return t && (t.tagName === "INPUT" && t.type !== "radio" && t.type !== "checkbox" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  function wireScreen(screen) {
    var form = $("[data-review-decide]", screen);
    var picker = $("[data-reason-picker]", screen);

    function decide(decision, add) {
      if (!form) return;
      form.elements.decision[0].value = decision;
      if (decision !== "rejected") $$("input[name=reason]", form).forEach(function (r) { r.checked = false; });
      form.elements.add_annotations.value = add ? "1" : "";
      // Only the hidden decision field carries it: the buttons' own names stay out.
      $$("button[name=decision]", form).forEach(function (b) { b.disabled = true; });
      form.submit();
    }
    function openPicker() {
      if (!picker) return;
      picker.hidden = false;
      var first = $("input[type=radio]", picker);
      if (first) first.focus();
    }
    function closePicker() { if (picker) picker.hidden = true; }
    function picking() { return picker && !picker.hidden; }
    function confirmReject() {
      var chosen = $("input[type=radio]:checked", picker);
      if (!chosen) { openPicker(); return; }
      decide("rejected", false);
    }
    function go(selector) {
      var link = $(selector, screen);
      if (link && link.href) { window.location.href = link.href; return true; }
      return false;
    }

    if (form) {
      form.addEventListener("submit", function (event) {
        var b = event.submitter;
        if (!b) return;
        event.preventDefault();
        if (b.hasAttribute("data-add-annotations")) decide("accepted", true);
        else if (b.value === "rejected") confirmReject();
        else decide(b.value, false);
      });
      var open = $("[data-reject-open]", form);
      if (open) open.addEventListener("click", openPicker);
    }

    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.metaKey || event.ctrlKey) return;
      if (picking()) {
        if (event.key === "Escape") { event.preventDefault(); closePicker(); return; }
        if (event.key === "Enter" && event.target.tagName !== "TEXTAREA") {
          event.preventDefault(); confirmReject(); return;
        }
        if (!typing(event) && /^[1-9]$/.test(event.key)) {
          var radio = $("input[data-reason-index='" + event.key + "']", picker);
          if (radio) { event.preventDefault(); radio.checked = true; radio.focus(); }
          return;
        }
        if (typing(event)) return;
      }
      if (typing(event)) return;
      switch (event.key) {
        case "j": case "ArrowRight":
          event.preventDefault();
          if (!go("[data-review-next]")) { var claim = $("[data-review-claim]", screen); if (claim) claim.submit(); }
          break;
        case "k": case "ArrowLeft":
          event.preventDefault(); go("[data-review-prev]"); break;
        case "a": event.preventDefault(); decide("accepted", false); break;
        case "A": if ($("[data-add-annotations]", screen)) { event.preventDefault(); decide("accepted", true); } break;
        case "s": event.preventDefault(); decide("skipped", false); break;
        case "c": event.preventDefault(); decide("corrected", false); break;
        case "r": event.preventDefault(); openPicker(); break;
        case "e": event.preventDefault(); go("[data-review-edit]"); break;
        case "u": {
          var undo = $("[data-review-undo]", screen);
          if (undo) { event.preventDefault(); undo.submit(); }
          break;
        }
      }
    });
  }

  function wireQueueForm(form) {
    var kind = $("[data-source-kind]", form);
    function show() {
      $$("fieldset[data-source]", form).forEach(function (f) {
        var on = f.getAttribute("data-source").split(" ").indexOf(kind.value) >= 0;
        f.hidden = !on;
        $$("input, select, textarea", f).forEach(function (el) { el.disabled = !on; });
      });
    }
    kind.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var screen = $("[data-review-screen]");
    if (screen) wireScreen(screen);
    var form = $("[data-review-form]");
    if (form) wireQueueForm(form);
  });
})();
