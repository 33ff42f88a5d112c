// dtnn serve: the drawing page.  Strokes are kept as point lists (so the canvas can be
// redrawn after a resize and Undo works); Predict sends the canvas as a PNG to
// /api/predict and shows what comes back.  No libraries, nothing loaded from elsewhere.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const strokes = [];          // [{width, points: [[x, y], ...]}], coordinates in CSS px / pad width
  let current = null;
  let card = null;
  let selected = 0;            // which segmented character the bars show
  let lastAnswer = null;
  let inFlight = false, queued = false, lastLive = 0;
  let answers = 0;

  // --- canvas geometry ------------------------------------------------------------------
  function resize() {
    const rect = pad.getBoundingClientRect();
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    pad.width = Math.max(1, Math.round(rect.width * ratio));
    pad.height = Math.max(1, Math.round(rect.height * ratio));
    redraw();
  }

  function scale() { return pad.width; }   // stroke coordinates are fractions of the width

  function paper() {
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.restore();
  }

  function drawSegment(width, a, b) {
    const s = scale();
    ctx.strokeStyle = "#000";
    ctx.lineWidth = width * s;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a[0] * s, a[1] * s);
    ctx.lineTo(b[0] * s, b[1] * s);
    ctx.stroke();
  }

  function drawStroke(st) {
    const pts = st.points;
    if (pts.length === 1) drawSegment(st.width * pts[0][2], pts[0], pts[0]);
    for (let i = 1; i < pts.length; i++) drawSegment(st.width * pts[i][2], pts[i - 1], pts[i]);
  }

  function redraw() {
    paper();
    strokes.forEach(drawStroke);
    $("hint").hidden = strokes.length > 0;
  }

  // --- pointer input (mouse, touch and pen alike) -----------------------------------------
  function point(ev) {
    const rect = pad.getBoundingClientRect();
    const w = rect.width || 1;
    // a pen's pressure thickens or thins the stroke; mouse and touch report 0.5 or 0
    const pressure = ev.pointerType === "pen" && ev.pressure > 0 ? 0.4 + 1.2 * ev.pressure : 1;
    return [(ev.clientX - rect.left) / w, (ev.clientY - rect.top) / w, pressure];
  }

  function strokeWidth() {
    const rect = pad.getBoundingClientRect();
    return Number($("stroke").value) / (rect.width || 1);
  }

  pad.addEventListener("pointerdown", (ev) => {
    if (ev.button !== undefined && ev.button > 0) return;
    ev.preventDefault();
    pad.setPointerCapture(ev.pointerId);
    current = { width: strokeWidth(), points: [point(ev)] };
    strokes.push(current);
    $("hint").hidden = true;
    drawStroke(current);
  });

  pad.addEventListener("pointermove", (ev) => {
    if (!current) return;
    ev.preventDefault();
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
    for (const e of (events.length ? events : [ev])) {
      const p = point(e);
      const prev = current.points[current.points.length - 1];
      current.points.push(p);
      drawSegment(current.width * p[2], prev, p);
    }
    if ($("live").checked && performance.now() - lastLive > 350) {
      lastLive = performance.now();
      predict();
    }
  });

  function endStroke(ev) {
    if (!current) return;
    current = null;
    if (ev && pad.hasPointerCapture && pad.hasPointerCapture(ev.pointerId)) {
      pad.releasePointerCapture(ev.pointerId);
    }
    if ($("live").checked) predict();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  // --- buttons ----------------------------------------------------------------------------
  function clearAll() {
    strokes.length = 0;
    current = null;
    lastAnswer = null;
    redraw();
    $("prediction").textContent = "–";
    $("confidence").textContent = "";
    $("top5").innerHTML = "";
    $("model-input").removeAttribute("src");
    $("chars-block").hidden = true;
    showError("");
    document.body.dataset.state = "idle";
  }

  $("clear").addEventListener("click", clearAll);
  $("undo").addEventListener("click", () => {
    strokes.pop();
    redraw();
    if (strokes.length && $("live").checked) predict();
    if (!strokes.length) clearAll();
  });
  $("predict").addEventListener("click", () => predict());
  $("stroke").addEventListener("input", () => { $("stroke-value").textContent = $("stroke").value; });
  $("segment").addEventListener("change", () => { if (strokes.length) predict(); });
  $("copy-latex").addEventListener("click", copyLatex);
  window.addEventListener("resize", resize);

  async function copyLatex() {
    const text = $("latex").textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {        // http on another host, or clipboard blocked: select it instead
      const range = document.createRange();
      range.selectNodeContents($("latex"));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try { document.execCommand("copy"); } catch (e2) { /* selected is the best we can do */ }
    }
    $("copy-latex").textContent = "Copied";
    setTimeout(() => { $("copy-latex").textContent = "Copy LaTeX"; }, 1200);
  }

  // --- talking to the server --------------------------------------------------------------
  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  // the drawing at CSS-pixel size: a retina/phone canvas has 4x the pixels and nothing
  // a 28x28 model can use, so the upload and the server's PNG decoding stay small
  function canvasPng() {
    const rect = pad.getBoundingClientRect();
    let src = pad;
    if (pad.width > Math.round(rect.width) + 1) {
      src = document.createElement("canvas");
      src.width = Math.max(1, Math.round(rect.width));
      src.height = Math.max(1, Math.round(rect.height));
      const c = src.getContext("2d");
      c.imageSmoothingQuality = "high";
      c.drawImage(pad, 0, 0, src.width, src.height);
    }
    return new Promise((resolve) => src.toBlob(resolve, "image/png"));
  }

  async function predict() {
    if (!strokes.length) { showError("Draw something first."); return; }
    if (inFlight) { queued = true; return; }
    inFlight = true;
    document.body.dataset.state = "busy";
    $("predict").disabled = true;
    try {
      const body = await canvasPng();
      const seg = $("segment").checked ? 1 : 0;
      const res = await fetch(`/api/predict?top_k=5&segment=${seg}`, {
        method: "POST", headers: { "Content-Type": "image/png" }, body });
      const data = await res.json();
      if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
      if (!strokes.length) return;       // cleared while the request was out
      lastAnswer = data;
      selected = 0;
      show(data);
      showError("");
      answers += 1;
      document.body.dataset.answers = String(answers);
      document.body.dataset.state = "done";
    } catch (err) {
      showError(String(err.message || err));
      document.body.dataset.state = "error";
    } finally {
      inFlight = false;
      $("predict").disabled = false;
      if (queued) { queued = false; predict(); }
    }
  }

  function pct(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%"; }

  function showOne(item) {
    $("prediction").textContent = item.prediction;
    $("confidence").textContent = pct(item.probability) + " sure";
    if (item.input) $("model-input").src = item.input;
    const list = $("top5");
    list.innerHTML = "";
    for (const t of item.top) {
      const li = document.createElement("li");
      li.dataset.class = t.class;
      li.dataset.probability = String(t.probability);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = t.class;
      name.title = t.class;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = (100 * t.probability).toFixed(1) + "%";
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "pct";
      value.textContent = pct(t.probability);
      li.append(name, track, value);
      list.appendChild(li);
    }
  }

  function show(data) {
    const chars = data.characters || [];
    const several = chars.length > 1;
    showOne(several ? chars[Math.min(selected, chars.length - 1)] : data);
    $("chars-block").hidden = !several;
    if (several) {
      const list = $("chars");
      list.innerHTML = "";
      chars.forEach((c, i) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.setAttribute("aria-pressed", String(i === selected));
        b.title = `${c.prediction} (${pct(c.probability)})`;
        const img = document.createElement("img");
        img.src = c.input;
        img.alt = `character ${i + 1} as the model saw it`;
        const label = document.createElement("span");
        label.textContent = c.prediction;
        b.append(img, label);
        b.addEventListener("click", () => { selected = i; show(lastAnswer); });
        li.appendChild(b);
        list.appendChild(li);
      });
      $("transcription").textContent = data.text;
      $("latex-row").hidden = !data.latex;
      $("latex").textContent = data.latex || "";
    }
    const t = data.timings_ms || {};
    setCard("last request", `${(t.total || 0).toFixed(1)} ms on the server ` +
            `(model ${(t.inference || 0).toFixed(1)} ms)`);
  }

  // --- the model card ---------------------------------------------------------------------
  function bytes(n) {
    if (n == null) return "?";
    return n >= 1048576 ? (n / 1048576).toFixed(2) + " MiB" : (n / 1024).toFixed(1) + " KiB";
  }

  function setCard(key, value) {
    const dl = $("card");
    let dd = dl.querySelector(`dd[data-key="${key}"]`);
    if (!dd) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      dd = document.createElement("dd");
      dd.dataset.key = key;
      dl.append(dt, dd);
    }
    dd.textContent = value;
  }

  function pruned(c) {
    const p = c.pruned;
    if (!p) return "no";
    if (typeof p !== "object") return "yes";
    const parts = [];
    if (p.criterion) parts.push(p.criterion);
    if (p.steps != null) parts.push(`${p.steps} steps`);
    if (p.original_parameters) {
      const kept = (100 * c.parameters / p.original_parameters).toFixed(1);
      parts.push(`from ${p.original_parameters.toLocaleString("en")} parameters (${kept}% kept)`);
    }
    return "yes" + (parts.length ? ": " + parts.join(", ") : "");
  }

  async function loadCard() {
    try {
      const res = await fetch("/api/model");
      card = await res.json();
    } catch (e) {
      $("model-line").textContent = "cannot reach the server";
      return;
    }
    const shape = card.input_shape.join("×");
    $("model-line").textContent = `${card.name} · ${card.classes.length} classes · input ${shape}`;
    setCard("model", card.name);
    setCard("file", card.file);
    setCard("parameters", card.parameters.toLocaleString("en"));
    setCard("size", `${bytes(card.file_bytes)} file, ${bytes(card.parameter_bytes)} weights`);
    setCard("input", shape + (card.dataset ? ` (${card.dataset})` : ""));
    const names = card.classes.slice(0, 12).join(", ") + (card.classes.length > 12 ? ", …" : "");
    setCard("classes", `${card.classes.length}: ${names}`);
    setCard("accuracy", card.accuracy ? `${(100 * card.accuracy.value).toFixed(2)}% ` +
            `(${card.accuracy.source})` : "not recorded");
    setCard("pruned", pruned(card));
    setCard("trained", `epoch ${card.epoch}, step ${card.step}`);
    setCard("last request", "–");
  }

  document.body.dataset.state = "idle";
  resize();
  loadCard();
})();
