// Lookalike web page: pick a photo, see its faces, pick one, see the nearest indexed faces.
// Plain JavaScript, no build step and nothing from the network but this server's own /v1 API.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const els = {
    table: $("table"), topk: $("topk"), settings: $("settings"), tokenForm: $("token-form"), token: $("token"),
    drop: $("drop"), file: $("file"), stage: $("stage"), frame: $("frame"), photo: $("photo"),
    chips: $("face-chips"), another: $("another"), status: $("status"),
    results: $("results"), resultsNote: $("results-note"),
    indexForm: $("index-form"), source: $("source"), indexTable: $("index-table"), indexButton: $("index-button"),
    job: $("job"), progress: $("progress"), progressBar: $("progress-bar"), jobText: $("job-text"),
    cancelJob: $("cancel-job"),
    jobErrors: $("job-errors"),
  };
  const TOKEN_KEY = "lookalike.token";
  const state = { file: null, photoUrl: null, search: null, selected: 0 };

  // ---------------------------------------------------------------------------------------- API calls

  function token() {
    return localStorage.getItem(TOKEN_KEY) || "";
  }

  function setToken(value) {
    if (value) {
      localStorage.setItem(TOKEN_KEY, value);
      // <img> tags cannot send a header: the server also takes the token from this cookie for images.
      document.cookie = "lookalike_token=" + value + "; path=/; SameSite=Strict";
    } else {
      localStorage.removeItem(TOKEN_KEY);
      document.cookie = "lookalike_token=; path=/; max-age=0; SameSite=Strict";
    }
  }

  class ApiError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || "request failed with status " + status);
      this.status = status;
      this.code = err.code || "error";
      this.hint = err.hint || "";
      this.requestId = err.request_id || "";
    }
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({}, opts.headers || {});
    if (token()) opts.headers["Authorization"] = "Bearer " + token();
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, { error: { message: "the server cannot be reached", hint: String(e) } });
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = new ApiError(resp.status, body);
      if (resp.status === 401) {
        els.settings.open = true;
        els.token.focus();
      }
      throw err;
    }
    return body;
  }

  function describe(err) {
    let text = err.message;
    if (err.hint) text += " (" + err.hint + ")";
    return text;
  }

  function setStatus(text, kind) {
    els.status.textContent = text || "";
    els.status.className = "status" + (kind ? " " + kind : "");
  }

  // ---------------------------------------------------------------------------------------- tables

  async function loadTables(keep) {
    const previous = keep || els.table.value;
    let tables = [];
    try {
      tables = (await api("/v1/tables")).tables;
    } catch (err) {
      setStatus(describe(err), "error");
      return;
    }
    els.table.replaceChildren();
    if (!tables.length) {
      const opt = new Option("no tables yet", "");
      opt.disabled = true;
      els.table.append(opt);
      setStatus("The dataset has no faces yet: index a folder of photos below.", "");
      return;
    }
    for (const t of tables) {
      els.table.append(new Option(t.name + " (" + t.faces + " faces)", t.name));
    }
    const names = tables.map((t) => t.name);
    els.table.value = names.includes(previous) ? previous : names.includes("faces") ? "faces" : names[0];
  }

  // ---------------------------------------------------------------------------------------- search

  function showPhoto(file) {
    if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
    state.photoUrl = URL.createObjectURL(file);
    els.photo.src = state.photoUrl;
    els.stage.hidden = false;
    els.drop.classList.add("compact");
  }

  async function runSearch() {
    if (!state.file) return;
    if (!els.table.value) {
      setStatus("There is no table to search yet: index a folder of photos first.", "error");
      return;
    }
    const form = new FormData();
    form.append("image", state.file);
    form.append("table", els.table.value);
    form.append("top_k", els.topk.value);
    setStatus("Looking for faces…", "busy");
    clearBoxes();
    renderResults(null);
    try {
      state.search = await api("/v1/search", { method: "POST", body: form });
    } catch (err) {
      state.search = null;
      setStatus(describe(err), "error");
      return;
    }
    const faces = state.search.faces;
    state.selected = largestFace(faces);
    drawBoxes();
    renderResults(state.search);
    const n = faces.length;
    setStatus(n === 1 ? "1 face found." : n + " faces found: pick one to see its matches.", "ok");
  }

  function largestFace(faces) {
    let best = 0, bestArea = -1;
    for (const f of faces) {
      if (!f.bbox) continue;
      const area = (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
      if (area > bestArea) { best = f.face; bestArea = area; }
    }
    return best;
  }

  function clearBoxes() {
    for (const box of els.frame.querySelectorAll(".box")) box.remove();
    els.chips.replaceChildren();
  }

  function drawBoxes() {
    clearBoxes();
    const res = state.search;
    if (!res) return;
    const width = (res.image && res.image.width) || els.photo.naturalWidth || 1;
    const height = (res.image && res.image.height) || els.photo.naturalHeight || 1;
    res.faces.forEach((f, i) => {
      if (!f.bbox) return;
      const [x1, y1, x2, y2] = f.bbox;
      const box = document.createElement("button");
      box.type = "button";
      box.className = "box" + (f.face === state.selected ? " selected" : "");
      box.style.left = (100 * Math.max(0, x1) / width) + "%";
      box.style.top = (100 * Math.max(0, y1) / height) + "%";
      box.style.width = (100 * (Math.min(width, x2) - Math.max(0, x1)) / width) + "%";
      box.style.height = (100 * (Math.min(height, y2) - Math.max(0, y1)) / height) + "%";
      box.title = "Face " + (i + 1);
      box.setAttribute("aria-label", "Face " + (i + 1));
      box.dataset.face = String(f.face);
      const tag = document.createElement("span");
      tag.className = "box-tag";
      tag.textContent = String(i + 1);
      box.append(tag);
      box.addEventListener("click", () => selectFace(f.face));
      els.frame.append(box);
      if (res.faces.length > 1) {
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip" + (f.face === state.selected ? " selected" : "");
        chip.textContent = "Face " + (i + 1);
        chip.addEventListener("click", () => selectFace(f.face));
        els.chips.append(chip);
      }
    });
  }

  function selectFace(face) {
    state.selected = face;
    drawBoxes();
    renderResults(state.search);
  }

  function shortName(uri) {
    const parts = uri.split(/[\\/]/).filter(Boolean);
    return parts.slice(-2).join("/");
  }

  function baseName(uri) {
    const parts = uri.split(/[\\/]/).filter(Boolean);
    return parts[parts.length - 1] || uri;
  }

  // Show the photo as large as the panel allows (small photos scaled up), keeping its shape.
  function fitPhoto() {
    const img = els.photo;
    if (!img.naturalWidth) return;
    const room = els.stage.clientWidth || 320;
    const maxHeight = Math.max(200, window.innerHeight * 0.6);
    const scale = Math.min(room / img.naturalWidth, maxHeight / img.naturalHeight, 4);
    img.style.width = Math.round(img.naturalWidth * scale) + "px";
  }

  function renderResults(res) {
    els.results.replaceChildren();
    els.resultsNote.textContent = "";
    if (!res) return;
    const rows = res.results.filter((r) => r.query_face === state.selected);
    if (!rows.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = res.faces.length ? "No indexed faces to compare with." : "No face found in this photo.";
      els.results.append(p);
      return;
    }
    els.resultsNote.textContent = "in " + res.table + (res.stale ? " (dataset busy: last version)" : "");
    const table = encodeURIComponent(res.table);
    for (const r of rows) {
      const card = document.createElement("article");
      card.className = "card" + (r.same_person === true ? " same" : "");
      card.dataset.uri = r.uri;
      card.dataset.rank = String(r.rank);

      const link = document.createElement("a");
      link.href = "/v1/faces/" + r.face_id + "/image?table=" + table;
      link.target = "_blank";
      link.rel = "noopener";
      link.className = "thumb-link";
      link.title = "Open the full photo";
      const img = document.createElement("img");
      img.className = "thumb";
      img.loading = "lazy";
      img.alt = "Face " + r.face_id + " from " + shortName(r.uri);
      img.src = "/v1/faces/" + r.face_id + "/thumbnail?table=" + table;
      link.append(img);
      const rank = document.createElement("span");
      rank.className = "rank";
      rank.textContent = "#" + r.rank;
      link.append(rank);

      const body = document.createElement("div");
      body.className = "card-body";
      const name = document.createElement("div");
      name.className = "name";
      name.textContent = baseName(r.uri);
      name.title = r.uri;
      const meta = document.createElement("div");
      meta.className = "meta";
      const dist = document.createElement("span");
      dist.className = "distance";
      dist.textContent = res.distance + " " + r.distance.toFixed(3);
      const badge = document.createElement("span");
      // same_person is true, false, or null: uncertain for this table's population (the reason is the tooltip)
      const verdict = r.same_person === true ? "yes" : r.same_person === false ? "no" : "maybe";
      badge.className = "badge " + verdict;
      badge.textContent = { yes: "same person", no: "different", maybe: "uncertain" }[verdict];
      if (r.same_person_reason) badge.title = r.same_person_reason;
      meta.append(dist, badge);
      const full = document.createElement("a");
      full.className = "full";
      full.href = link.getAttribute("href");
      full.target = "_blank";
      full.rel = "noopener";
      full.textContent = "Full photo ↗";
      body.append(name, meta, full);
      card.append(link, body);
      els.results.append(card);
    }
  }

  function takeFile(file) {
    if (!file) return;
    state.file = file;
    state.search = null;
    showPhoto(file);
    runSearch();
  }

  // ---------------------------------------------------------------------------------------- indexing

  async function startIndex(event) {
    event.preventDefault();
    const body = { source: els.source.value.trim(), table: els.indexTable.value.trim(), chunk_size: 8 };
    els.indexButton.disabled = true;
    els.job.hidden = false;
    els.jobErrors.replaceChildren();
    showProgress(0, "Starting…");
    try {
      const job = await api("/v1/index", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      await followJob(job.id);
    } catch (err) {
      showProgress(0, describe(err), true);
    } finally {
      els.indexButton.disabled = false;
    }
  }

  function showProgress(fraction, text, failed) {
    const pct = Math.round(100 * Math.max(0, Math.min(1, fraction)));
    els.progressBar.style.width = pct + "%";
    els.progress.setAttribute("aria-valuenow", String(pct));
    els.progress.classList.toggle("failed", !!failed);
    els.jobText.textContent = text;
  }

  async function cancelJob() {
    const id = els.cancelJob.dataset.job;
    if (!id) return;
    els.cancelJob.disabled = true;
    try {
      await api("/v1/jobs/" + encodeURIComponent(id), { method: "DELETE" });
    } catch (err) {
      showProgress(0, describe(err), true);
    }
  }

  async function followJob(id) {
    els.cancelJob.dataset.job = id;
    els.cancelJob.disabled = false;
    els.cancelJob.hidden = false;
    try {
      await pollJob(id);
    } finally {
      els.cancelJob.hidden = true;
      delete els.cancelJob.dataset.job;
    }
  }

  async function pollJob(id) {
    for (;;) {
      const job = await api("/v1/jobs/" + encodeURIComponent(id));
      if (job.status === "queued") {
        showProgress(0, "Waiting for the previous job…");
      } else if (job.status === "running") {
        const text = job.total === null ? "Listing photos…" : job.done + " / " + job.total + " photos";
        showProgress(job.progress, text);
      } else {
        finishJob(job);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  function finishJob(job) {
    if (job.status === "cancelled") {
      showProgress(job.progress, "Cancelled after " + job.done + " photos; they stay indexed. Start again to finish.", true);
      return;
    }
    if (job.status === "failed") {
      const err = job.error || {};
      showProgress(job.progress, "Failed: " + (err.message || "unknown error"), true);
      return;
    }
    const r = job.report || {};
    showProgress(1, "Done: " + r.added + " added, " + r.updated + " updated, " + r.removed + " removed, " +
      r.unchanged + " unchanged, " + r.failed + " failed; " + r.faces + " faces.");
    for (const e of job.errors.slice(0, 50)) {
      const li = document.createElement("li");
      li.textContent = shortName(e.uri) + ": " + e.message;
      els.jobErrors.append(li);
    }
    loadTables(job.table).then(() => { if (state.file) runSearch(); });
  }

  // ---------------------------------------------------------------------------------------- wiring

  els.photo.addEventListener("load", fitPhoto);
  window.addEventListener("resize", fitPhoto);
  els.file.addEventListener("change", () => takeFile(els.file.files[0]));
  els.another.addEventListener("click", () => els.file.click());
  for (const target of [els.drop, document.body]) {
    target.addEventListener("dragover", (e) => { e.preventDefault(); els.drop.classList.add("over"); });
    target.addEventListener("dragleave", () => els.drop.classList.remove("over"));
    target.addEventListener("drop", (e) => {
      e.preventDefault();
      els.drop.classList.remove("over");
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      takeFile(file);
    });
  }
  els.drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); els.file.click(); }
  });
  els.table.addEventListener("change", () => {
    els.indexTable.value = els.table.value || els.indexTable.value;
    runSearch();
  });
  els.topk.addEventListener("change", runSearch);
  els.tokenForm.addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(els.token.value.trim());
    els.settings.open = false;
    setStatus("", "");
    loadTables().then(runSearch);
  });
  els.indexForm.addEventListener("submit", startIndex);
  els.cancelJob.addEventListener("click", cancelJob);

  els.token.value = token();
  if (token()) setToken(token());
  loadTables().then(() => { if (els.table.value) els.indexTable.value = els.table.value; });
})();
