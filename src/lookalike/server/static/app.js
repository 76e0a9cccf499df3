// Lookalike web page: pick a photo, see its faces, pick one, see the nearest indexed faces; and the People view:
// the persons the table's faces are grouped into, to name, merge, split and forget.
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
    byPerson: $("by-person"), tabSearch: $("tab-search"), tabPeople: $("tab-people"),
    searchView: $("search-view"), peopleView: $("people-view"), peopleStatus: $("people-status"),
    peoplePanel: $("people-panel"), peopleGrid: $("people-grid"), peopleNote: $("people-note"),
    showHidden: $("show-hidden"), mergeSelected: $("merge-selected"), clusterButton: $("cluster-button"),
    personPanel: $("person-panel"), personBack: $("person-back"), personTitle: $("person-title"),
    renameForm: $("rename-form"), personName: $("person-name"), faceSelection: $("face-selection"),
    moveNew: $("move-new"), moveTarget: $("move-target"), moveTo: $("move-to"), unassign: $("unassign"),
    feature: $("feature"), hidePerson: $("hide-person"), forgetPerson: $("forget-person"),
    personFaces: $("person-faces"), confirmDialog: $("confirm-dialog"), confirmTitle: $("confirm-title"),
    confirmText: $("confirm-text"), confirmOk: $("confirm-ok"),
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
    if (els.byPerson.checked) form.append("people", "true");
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
      else if (r.same_person_basis === "person") badge.title = "decided by the table's persons (People)";
      meta.append(dist, badge);
      const full = document.createElement("a");
      full.className = "full";
      full.href = link.getAttribute("href");
      full.target = "_blank";
      full.rel = "noopener";
      full.textContent = "Full photo ↗";
      body.append(name);
      if (r.person_id !== null && r.person_id !== undefined) {
        // the person this face is in: its name when it has one; a click opens the person in the People view
        const who = document.createElement("button");
        who.type = "button";
        who.className = "person-name" + (r.person_name ? "" : " unnamed");
        who.textContent = r.person_name || "Person " + r.person_id;
        who.title = "Open this person";
        who.addEventListener("click", () => { showView("people"); openPerson(r.person_id); });
        body.append(who);
      }
      body.append(meta, full);
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
    loadTables(job.table).then(() => {
      if (state.file) runSearch();
      if (!els.peopleView.hidden && !people.person) loadPeople();
    });
  }


  // ---------------------------------------------------------------------------------------- people

  const people = { list: [], selected: [], person: null, faces: new Set() };

  function tableParam() {
    return "table=" + encodeURIComponent(els.table.value);
  }

  function jsonPost(path, body) {
    return api(path, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ table: els.table.value }, body)),
    });
  }

  function setPeopleStatus(text, kind) {
    els.peopleStatus.textContent = text || "";
    els.peopleStatus.className = "status" + (kind ? " " + kind : "");
  }

  function personLabel(p) {
    return p.name || "Person " + p.person_id;
  }

  function faceThumb(faceId, alt) {
    const img = document.createElement("img");
    img.className = "thumb";
    img.loading = "lazy";
    img.alt = alt;
    if (faceId !== null && faceId !== undefined) {
      img.src = "/v1/faces/" + faceId + "/thumbnail?" + tableParam();
    }
    return img;
  }

  function showView(name) {
    const onPeople = name === "people";
    els.searchView.hidden = onPeople;
    els.peopleView.hidden = !onPeople;
    els.tabSearch.setAttribute("aria-pressed", String(!onPeople));
    els.tabPeople.setAttribute("aria-pressed", String(onPeople));
    if (onPeople) {
      showPersonPanel(false);
      loadPeople();
    }
  }

  function showPersonPanel(open) {
    els.peoplePanel.hidden = open;
    els.personPanel.hidden = !open;
    if (!open) people.person = null;
  }

  async function loadPeople() {
    if (!els.table.value) {
      people.list = [];
      renderPeople();
      setPeopleStatus("There is no table yet: index a folder of photos first.", "error");
      return;
    }
    const hidden = els.showHidden.checked ? "&include_hidden=true" : "";
    try {
      people.list = (await api("/v1/people?" + tableParam() + hidden)).people;
    } catch (err) {
      setPeopleStatus(describe(err), "error");
      return;
    }
    const ids = new Set(people.list.map((p) => p.person_id));
    people.selected = people.selected.filter((id) => ids.has(id));
    renderPeople();
  }

  function renderPeople() {
    els.peopleGrid.replaceChildren();
    els.peopleNote.textContent = people.list.length ? "in " + els.table.value + ": " + people.list.length : "";
    if (!people.list.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No people yet: “Group new faces” puts the table's faces into persons.";
      els.peopleGrid.append(p);
    }
    for (const person of people.list) {
      const card = document.createElement("article");
      card.className = "person-card" + (person.hidden ? " is-hidden" : "");
      card.classList.toggle("picked", people.selected.includes(person.person_id));
      card.dataset.personId = String(person.person_id);

      const pick = document.createElement("input");
      pick.type = "checkbox";
      pick.className = "pick";
      pick.checked = people.selected.includes(person.person_id);
      pick.setAttribute("aria-label", "Select " + personLabel(person));
      pick.addEventListener("change", () => {
        people.selected = people.selected.filter((id) => id !== person.person_id);
        if (pick.checked) people.selected.push(person.person_id);
        card.classList.toggle("picked", pick.checked);
        updateMergeButton();
      });

      const open = document.createElement("button");
      open.type = "button";
      open.className = "person-open";
      open.title = "Open " + personLabel(person);
      const frame = document.createElement("span");
      frame.className = "thumb-frame";
      frame.append(faceThumb(person.feature_face_id, "Face of " + personLabel(person)));
      const name = document.createElement("span");
      name.className = "person-label" + (person.name ? "" : " unnamed");
      name.textContent = personLabel(person);
      const count = document.createElement("span");
      count.className = "person-count";
      count.textContent = person.faces + (person.faces === 1 ? " face" : " faces") + (person.hidden ? " · hidden" : "");
      open.append(frame, name, count);
      open.addEventListener("click", () => openPerson(person.person_id));

      card.append(pick, open);
      els.peopleGrid.append(card);
    }
    updateMergeButton();
  }

  function updateMergeButton() {
    const n = people.selected.length;
    els.mergeSelected.disabled = n < 2;
    els.mergeSelected.textContent = n >= 2 ? "Merge " + n + " selected" : "Merge selected";
  }

  async function mergeSelected() {
    const ids = people.selected.slice();
    if (ids.length < 2) return;
    els.mergeSelected.disabled = true;
    setPeopleStatus("Merging…", "busy");
    try {
      const kept = await jsonPost("/v1/people/merge", { person_ids: ids });
      people.selected = [];
      setPeopleStatus("Merged " + ids.length + " persons into " + personLabel(kept) + " (" + kept.faces + " faces).", "ok");
    } catch (err) {
      setPeopleStatus(describe(err), "error");
    }
    await loadPeople();
  }

  async function clusterPeople() {
    els.clusterButton.disabled = true;
    setPeopleStatus("Grouping faces…", "busy");
    try {
      const r = await jsonPost("/v1/people/cluster", {});
      setPeopleStatus(r.new_persons + " new persons, " + r.joined_existing + " faces joined a person, " +
        r.unassigned + " faces in no person yet; " + r.persons + " persons in all.", "ok");
    } catch (err) {
      setPeopleStatus(describe(err), "error");
    } finally {
      els.clusterButton.disabled = false;
    }
    await loadPeople();
  }

  async function openPerson(personId) {
    setPeopleStatus("", "");
    let person;
    try {
      person = await api("/v1/people/" + encodeURIComponent(personId) + "?" + tableParam());
    } catch (err) {
      setPeopleStatus(describe(err), "error");
      showPersonPanel(false);
      return;
    }
    if (!people.person || people.person.person_id !== person.person_id) people.faces.clear();
    people.person = person;
    const ids = new Set(person.face_list.map((f) => f.face_id));
    for (const id of Array.from(people.faces)) if (!ids.has(id)) people.faces.delete(id);
    showPersonPanel(true);
    renderPerson();
  }

  function renderPerson() {
    const person = people.person;
    if (!person) return;
    els.personTitle.textContent = personLabel(person) + " · " + person.faces + (person.faces === 1 ? " face" : " faces");
    els.personName.value = person.name || "";
    els.hidePerson.textContent = person.hidden ? "Show again" : "Hide";
    els.personFaces.replaceChildren();
    for (const f of person.face_list) {
      const tile = document.createElement("label");
      tile.className = "face-tile";
      tile.dataset.faceId = String(f.face_id);
      tile.classList.toggle("picked", people.faces.has(f.face_id));
      const pick = document.createElement("input");
      pick.type = "checkbox";
      pick.className = "pick";
      pick.checked = people.faces.has(f.face_id);
      pick.setAttribute("aria-label", "Select face " + f.face_id);
      pick.addEventListener("change", () => {
        if (pick.checked) people.faces.add(f.face_id); else people.faces.delete(f.face_id);
        tile.classList.toggle("picked", pick.checked);
        updateFaceActions();
      });
      const frame = document.createElement("span");
      frame.className = "thumb-frame";
      frame.append(faceThumb(f.face_id, "Face " + f.face_id + " from " + shortName(f.uri)));
      if (f.face_id === person.feature_face_id) {
        const cover = document.createElement("span");
        cover.className = "cover-tag";
        cover.textContent = "cover";
        frame.append(cover);
      }
      const caption = document.createElement("span");
      caption.className = "face-caption";
      caption.textContent = baseName(f.uri);
      caption.title = f.uri;
      tile.append(pick, frame, caption);
      els.personFaces.append(tile);
    }
    els.moveTarget.replaceChildren(new Option("another person…", ""));
    for (const other of people.list) {
      if (other.person_id !== person.person_id) els.moveTarget.append(new Option(personLabel(other), String(other.person_id)));
    }
    updateFaceActions();
  }

  function updateFaceActions() {
    const n = people.faces.size;
    els.faceSelection.textContent = n ? n + (n === 1 ? " face selected" : " faces selected") : "Select faces to move them.";
    els.moveNew.disabled = n === 0;
    els.unassign.disabled = n === 0;
    els.moveTo.disabled = n === 0 || !els.moveTarget.value;
    els.feature.disabled = n !== 1;
  }

  // Run an edit of the open person, then show it again (or the list, when the person is gone).
  async function editPerson(busyText, fn) {
    const person = people.person;
    if (!person) return;
    setPeopleStatus(busyText, "busy");
    try {
      const text = await fn(person);
      setPeopleStatus(text, "ok");
    } catch (err) {
      setPeopleStatus(describe(err), "error");
    }
    await loadPeople();
    try {
      people.person = await api("/v1/people/" + person.person_id + "?" + tableParam());
      renderPerson();
      return;
    } catch (err) {
      if (err.status !== 404) setPeopleStatus(describe(err), "error");
    }
    showPersonPanel(false);  // the person is gone (every face moved out)
  }

  function selectedFaces() {
    return Array.from(people.faces).sort((a, b) => a - b);
  }

  function moveFaces(to) {
    const faces = selectedFaces();
    return editPerson("Moving…", async () => {
      const target = await jsonPost("/v1/people/move", { face_ids: faces, to: to });
      people.faces.clear();
      return "Moved " + faces.length + (faces.length === 1 ? " face" : " faces") + " to " + personLabel(target) + ".";
    });
  }

  function unassignFaces() {
    const faces = selectedFaces();
    return editPerson("Taking faces out…", async () => {
      await jsonPost("/v1/people/unassign", { face_ids: faces });
      people.faces.clear();
      return "Took " + faces.length + (faces.length === 1 ? " face" : " faces") + " out; they are in no person now.";
    });
  }

  function renamePerson(event) {
    event.preventDefault();
    const name = els.personName.value;
    return editPerson("Saving the name…", async (person) => {
      const p = await jsonPost("/v1/people/" + person.person_id + "/name", { name: name });
      return "Named " + personLabel(p) + ".";
    });
  }

  function featureFace() {
    const faces = selectedFaces();
    if (faces.length !== 1) return;
    return editPerson("Choosing the cover…", async (person) => {
      await jsonPost("/v1/people/" + person.person_id + "/feature", { face_id: faces[0] });
      people.faces.clear();
      return "The person is shown by face " + faces[0] + " now.";
    });
  }

  function toggleHidden() {
    return editPerson("Saving…", async (person) => {
      const p = await jsonPost("/v1/people/" + person.person_id + "/hide", { hidden: !person.hidden });
      return personLabel(p) + (p.hidden ? " is hidden from the list (Show hidden lists them)." : " is listed again.");
    });
  }

  // An in-page confirmation (a <dialog>): resolves to true when the user confirms.
  function confirmAction(title, text, okLabel) {
    return new Promise((resolve) => {
      const dialog = els.confirmDialog;
      els.confirmTitle.textContent = title;
      els.confirmText.textContent = text;
      els.confirmOk.textContent = okLabel;
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      els.confirmOk.focus();
    });
  }

  async function forgetPerson() {
    const person = people.person;
    if (!person) return;
    const ok = await confirmAction(
      "Forget " + personLabel(person) + "?",
      "Their " + person.faces + " faces, embeddings and thumbnails are deleted for good, and they stay out when " +
        "the photos are indexed again. The photos themselves are not touched.",
      "Forget",
    );
    if (!ok) return;
    setPeopleStatus("Forgetting…", "busy");
    try {
      const r = await api("/v1/people/" + person.person_id + "?" + tableParam(), { method: "DELETE" });
      setPeopleStatus("Forgot " + personLabel(person) + ": " + r.faces_removed + " faces deleted.", "ok");
    } catch (err) {
      setPeopleStatus(describe(err), "error");
      return;
    }
    showPersonPanel(false);
    await loadPeople();
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
    if (!els.peopleView.hidden) showView("people");
  });
  els.topk.addEventListener("change", runSearch);
  els.byPerson.addEventListener("change", runSearch);
  els.tabSearch.addEventListener("click", () => showView("search"));
  els.tabPeople.addEventListener("click", () => showView("people"));
  els.showHidden.addEventListener("change", loadPeople);
  els.mergeSelected.addEventListener("click", mergeSelected);
  els.clusterButton.addEventListener("click", clusterPeople);
  els.personBack.addEventListener("click", () => { showPersonPanel(false); loadPeople(); });
  els.renameForm.addEventListener("submit", renamePerson);
  els.moveNew.addEventListener("click", () => moveFaces(null));
  els.moveTarget.addEventListener("change", updateFaceActions);
  els.moveTo.addEventListener("click", () => { if (els.moveTarget.value) moveFaces(Number(els.moveTarget.value)); });
  els.unassign.addEventListener("click", unassignFaces);
  els.feature.addEventListener("click", featureFace);
  els.hidePerson.addEventListener("click", toggleHidden);
  els.forgetPerson.addEventListener("click", forgetPerson);
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
