// The report's trajectory browser and smoothing control. Plain DOM, no library, no network.
// The data is gzip-compressed JSON in base64 (`page::packed`), unpacked with the browser's own
// DecompressionStream.
async function unpack() {
  const b64 = document.getElementById("kaizen-data").textContent.trim();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text());
}

unpack().then((data) => {
  "use strict";
  const episodes = data.episodes;
  const ROW = 24;
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const smoothing = $("smoothing");
  if (smoothing) smoothing.addEventListener("change", () => { document.body.dataset.smooth = smoothing.value; save(); });

  // Filters.
  const fRun = $("f-run"), fTask = $("f-task"), fReward = $("f-reward"), fEnd = $("f-end"), fTools = $("f-tools");
  fRun.appendChild(new Option("every run", ""));
  data.runs.forEach((name, i) => fRun.appendChild(new Option(name, String(i))));
  [...new Set(episodes.map((e) => e.end))].sort().forEach((end) => fEnd.appendChild(new Option(end, end)));
  let shown = episodes;
  let open = null;
  function applyFilters() {
    const text = fTask.value.toLowerCase();
    shown = episodes.filter((e) =>
      (fRun.value === "" || e.run === Number(fRun.value)) &&
      (text === "" || e.task.toLowerCase().includes(text) || e.prompt.toLowerCase().includes(text)) &&
      (fReward.value === "" || (fReward.value === "solved") === e.solved) &&
      (fEnd.value === "" || e.end === fEnd.value) &&
      (fTools.value === "" || (fTools.value === "yes") === e.tools));
    $("count").textContent = shown.length + " of " + episodes.length + " episodes";
    $("spacer").style.height = shown.length * ROW + "px";
    list.scrollTop = 0;
    renderRows();
  }
  const KEY = "kaizen-report:" + data.runs.join("|");
  const save = () => {
    try {
      sessionStorage.setItem(KEY, JSON.stringify({ run: fRun.value, task: fTask.value, reward: fReward.value,
        end: fEnd.value, tools: fTools.value, smooth: document.body.dataset.smooth, open: open && open.id,
        openRun: open && open.run, scroll: list.scrollTop }));
    } catch (e) { /* storage may be off: state is then not kept */ }
  };
  [fRun, fReward, fEnd, fTools].forEach((f) => f.addEventListener("change", () => { applyFilters(); save(); }));
  fTask.addEventListener("input", () => { applyFilters(); save(); });

  // The list is virtual: only the rows in view (and a few around) exist in the DOM.
  const list = $("list");
  let rows = [];
  function renderRows() {
    rows.forEach((r) => r.remove());
    rows = [];
    const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 5);
    const last = Math.min(shown.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + 5);
    for (let i = first; i < last; i++) {
      const e = shown[i];
      const row = el("div", "row" + (e === open ? " open" : ""));
      row.style.top = i * ROW + "px";
      row.appendChild(el("span", e.solved ? "ok" : "bad", e.solved ? "✓ " : "✗ "));
      row.appendChild(document.createTextNode(e.id + " · " + e.task + " · " + e.end + (e.tools ? " · tools" : "")));
      row.addEventListener("click", () => { open = e; renderRows(); showEpisode(e); save(); });
      list.appendChild(row);
      rows.push(row);
    }
  }
  list.addEventListener("scroll", renderRows);

  // A number as the tables show it; JSON writes NaN and infinities as null.
  const num = (x) => (Number.isFinite(x) ? x.toFixed(3) : "—");
  // Log-prob → colour: probability 1 pale green (hue 120), 0 pale red (hue 0).
  const heat = (lp) => {
    const p = Math.exp(Math.max(lp, -20));
    return "hsl(" + Math.round(120 * p) + ", 80%, " + Math.round(70 + 25 * p) + "%)";
  };

  // Only embedded images: a URL in a shared run directory must not make the page fetch it.
  function showImages(m, images) {
    (images || []).forEach((src) => {
      if (typeof src === "string" && src.startsWith("data:image/")) {
        const img = el("img"); img.src = src; m.appendChild(img);
      } else {
        m.appendChild(el("code", "call", "image not embedded: " + String(src).slice(0, 80)));
      }
    });
  }

  function showEpisode(e) {
    const box = $("episode");
    box.textContent = "";
    const head = el("h3", null, e.id + " — " + data.runs[e.run]);
    box.appendChild(head);
    box.appendChild(el("p", null, "task " + e.task + " · reward " + e.reward + " · end " + e.end +
      " · answer " + (e.answer === null ? "none" : e.answer)));
    const task = el("div", "msg user", e.prompt);
    showImages(task, e.images);
    box.appendChild(task);
    e.turns.forEach((t, k) => {
      const a = el("div", "msg assistant", t.text);
      t.calls.forEach((c) => a.appendChild(el("code", "call", c.name + " " + JSON.stringify(c.arguments))));
      t.malformed.forEach((m) => a.appendChild(el("code", "call", "malformed: " + m)));
      box.appendChild(a);
      if (t.candidates.length) {
        const table = el("table", "candidates");
        const h = el("tr");
        ["step " + (k + 1) + " candidates", "log-prob", "score", "taken"].forEach((x) => h.appendChild(el("th", null, x)));
        table.appendChild(h);
        t.candidates.forEach((c) => {
          const r = el("tr");
          r.appendChild(el("td", c.chosen ? "chosen" : "", c.text));
          r.appendChild(el("td", null, num(c.logprob)));
          r.appendChild(el("td", null, num(c.score)));
          r.appendChild(el("td", null, c.chosen ? "✓" : ""));
          table.appendChild(r);
        });
        box.appendChild(table);
      }
      t.observations.forEach((o) => {
        const m = el("div", "msg tool" + (o.ok ? "" : " failed"), o.text);
        showImages(m, o.images);
        box.appendChild(m);
      });
    });
    box.appendChild(el("h4", null, "policy tokens by log-prob (hover for the value)"));
    const h = el("div");
    h.id = "heat";
    e.tokens.text.forEach((text, i) => {
      const lp = e.tokens.logprob[i];
      const s = el("span", null, text);
      s.style.background = Number.isFinite(lp) ? heat(lp) : "#ddd";
      s.title = Number.isFinite(lp) ? lp.toFixed(4) : "no log-prob";
      h.appendChild(s);
    });
    if (!e.tokens.text.length) h.appendChild(el("span", "none", "no policy tokens recorded (a remote policy or a scripted agent)"));
    box.appendChild(h);
  }

  // A reload (`--serve` reloads as the run grows) keeps the filters, smoothing and open episode.
  let saved = {};
  try { saved = JSON.parse(sessionStorage.getItem(KEY) || "{}"); } catch (e) { saved = {}; }
  if (saved.run !== undefined) {
    [[fRun, saved.run], [fTask, saved.task], [fReward, saved.reward], [fEnd, saved.end], [fTools, saved.tools]]
      .forEach(([f, v]) => { if (v !== undefined && v !== null) f.value = v; });
    if (smoothing && saved.smooth) { smoothing.value = saved.smooth; document.body.dataset.smooth = saved.smooth; }
  }
  applyFilters();
  if (saved.open) {
    open = episodes.find((e) => e.id === saved.open && e.run === saved.openRun) || null;
    if (open) showEpisode(open);
    list.scrollTop = saved.scroll || 0;
    renderRows();
  }
  // When the page became usable, from the start of navigation (read by `kaizen bench report`).
  document.body.dataset.readyMs = String(Math.round(performance.now()));
});
