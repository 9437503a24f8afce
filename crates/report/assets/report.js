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
  if (smoothing) smoothing.addEventListener("change", () => { document.body.dataset.smooth = smoothing.value; });

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
      (fReward.value === "" || (fReward.value === "solved") === (e.reward > 0.5)) &&
      (fEnd.value === "" || e.end === fEnd.value) &&
      (fTools.value === "" || (fTools.value === "yes") === e.tools));
    $("count").textContent = shown.length + " of " + episodes.length + " episodes";
    $("spacer").style.height = shown.length * ROW + "px";
    list.scrollTop = 0;
    renderRows();
  }
  [fRun, fReward, fEnd, fTools].forEach((f) => f.addEventListener("change", applyFilters));
  fTask.addEventListener("input", applyFilters);

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
      row.appendChild(el("span", e.reward > 0.5 ? "ok" : "bad", e.reward > 0.5 ? "✓ " : "✗ "));
      row.appendChild(document.createTextNode(e.id + " · " + e.task + " · " + e.end + (e.tools ? " · tools" : "")));
      row.addEventListener("click", () => { open = e; renderRows(); showEpisode(e); });
      list.appendChild(row);
      rows.push(row);
    }
  }
  list.addEventListener("scroll", renderRows);

  // Log-prob → colour: probability 1 white, 0 red.
  const heat = (lp) => {
    const p = Math.exp(Math.max(lp, -20));
    return "hsl(" + Math.round(120 * p) + ", 80%, " + Math.round(70 + 25 * p) + "%)";
  };

  function showEpisode(e) {
    const box = $("episode");
    box.textContent = "";
    const head = el("h3", null, e.id + " — " + data.runs[e.run]);
    box.appendChild(head);
    box.appendChild(el("p", null, "task " + e.task + " · reward " + e.reward + " · end " + e.end +
      " · answer " + (e.answer === null ? "none" : e.answer)));
    box.appendChild(el("div", "msg user", e.prompt));
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
          r.appendChild(el("td", null, c.logprob.toFixed(3)));
          r.appendChild(el("td", null, c.score === null || c.score === undefined ? "—" : c.score.toFixed(3)));
          r.appendChild(el("td", null, c.chosen ? "✓" : ""));
          table.appendChild(r);
        });
        box.appendChild(table);
      }
      t.observations.forEach((o) => {
        const m = el("div", "msg tool" + (o.ok ? "" : " failed"), o.text);
        (o.images || []).forEach((src) => { const img = el("img"); img.src = src; m.appendChild(img); });
        box.appendChild(m);
      });
    });
    box.appendChild(el("h4", null, "policy tokens by log-prob (hover for the value)"));
    const h = el("div");
    h.id = "heat";
    e.tokens.text.forEach((text, i) => {
      const lp = e.tokens.logprob[i];
      const s = el("span", null, text);
      s.style.background = heat(lp);
      s.title = lp.toFixed(4);
      h.appendChild(s);
    });
    if (!e.tokens.text.length) h.appendChild(el("span", "none", "no policy tokens recorded (a remote policy or a scripted agent)"));
    box.appendChild(h);
  }

  applyFilters();
  // When the page became usable, from the start of navigation (read by `kaizen bench report`).
  document.body.dataset.readyMs = String(Math.round(performance.now()));
});
