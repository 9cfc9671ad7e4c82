// The service's page: identify a photo (dropped, chosen, or from the camera, live), see every
// face boxed and named, browse and search the enrolled people, add or remove their photos,
// enroll new people. Plain JavaScript against the REST API; no build step. The API key and the
// chosen gallery are kept in localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
const gallerySelect = $("gallery");
keyInput.value = localStorage.getItem("siamese-api-key") || "";
let model = null; // GET …/model of the chosen gallery
let peopleAfter = null; // keyset paging: the last name shown
let liveTimer = null;

// ----------------------------------------------------------------------------------------
// Talking to the API

function headers() {
  const key = keyInput.value.trim();
  return key ? { "X-API-Key": key } : {};
}

function base() {
  const name = gallerySelect.value;
  const option = gallerySelect.selectedOptions[0];
  return !name || (option && option.dataset.default === "true")
    ? "/v1" : `/v1/galleries/${encodeURIComponent(name)}`;
}

// what each error code means for the person at the page, before the server's own words
const ADVICE = {
  unauthorized: "This needs an API key that opens this gallery: paste one above.",
  forbidden: "This API key may identify but not change the gallery: use an admin key.",
  rate_limited: "Too many requests for this key.",
  unavailable: "The service is busy or its database is unreachable.",
  payload_too_large: "That file is too large for this service.",
  unsupported_media_type: "That file is not an image.",
  invalid_image: "That image cannot be read.",
  no_face: "No face was found in that photo: try one where the face is larger and lit.",
  conflict: "That already exists.",
  not_found: "Not found (perhaps removed meanwhile).",
};

class ApiError extends Error {
  constructor(code, message, retryAfter) {
    super(message);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body) {
  let response;
  try {
    const init = { method, headers: headers(), body };
    if (body && !(body instanceof FormData)) {
      init.headers = { ...init.headers, "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError("network", "The service cannot be reached: is it running?", null);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || { code: String(response.status), message: response.statusText };
    throw new ApiError(error.code, error.message, response.headers.get("Retry-After"));
  }
  return data;
}

function showError(error) {
  if (!error) {
    $("error").textContent = "";
    return;
  }
  const advice = ADVICE[error.code] || "Something went wrong.";
  const retry = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
  $("error").textContent = `${advice}${retry} (${error.code}: ${error.message})`;
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

const thumbnails = new Map(); // identity → object URL (or null: no kept image)

async function exampleImage(identity, exampleId) {
  const response = await fetch(
    `${base()}/identities/${encodeURIComponent(identity)}/examples/${exampleId}/image`,
    { headers: headers() });
  return response.ok ? URL.createObjectURL(await response.blob()) : null;
}

async function thumbnail(identity) {
  // the first enrolled example's image, when the gallery keeps images
  const key = `${base()}|${identity}`;
  if (thumbnails.has(key)) return thumbnails.get(key);
  let url = null;
  try {
    const page = await api("GET", `${base()}/identities/${encodeURIComponent(identity)}/examples?limit=1`);
    if (page.items.length) url = await exampleImage(identity, page.items[0].id);
  } catch (error) {
    url = null;
  }
  thumbnails.set(key, url);
  return url;
}

function picture(url, alt) {
  return url ? element("img", { src: url, alt }) : element("div", { class: "blank", role: "img", "aria-label": `${alt}: no kept image` });
}

// ----------------------------------------------------------------------------------------
// The gallery, its model and its threshold in plain words

function people(count) {
  return `${count} ${count === 1 ? "person" : "people"}`;
}

function percent(rate) {
  if (rate === null || rate === undefined) return "unknown";
  const value = 100 * rate;
  return value >= 1 ? `${value.toPrecision(2)} %` : `${value.toPrecision(1)} %`;
}

function describeDecision(stats) {
  const strangers = stats.estimated_fpir === null
    ? "how many strangers it accepts is not yet known"
    : `about ${percent(stats.estimated_fpir)} of strangers (people not enrolled) would be taken for someone enrolled`;
  const rule = stats.rule === "fpir"
    ? `it keeps that share at ${percent(stats.target)} whatever the gallery's size`
    : `its pair false-accept rate is fixed at ${percent(stats.target)}, so that share grows with the gallery`;
  return `Same person when the distance is at most ${stats.threshold.toFixed(3)}: with ${people(stats.identities)} enrolled, ${strangers}; ${rule}.`;
}

async function loadGalleries() {
  const chosen = gallerySelect.value || localStorage.getItem("siamese-gallery") || "";
  try {
    const data = await api("GET", "/v1/galleries");
    gallerySelect.replaceChildren(...data.items.map((g) => element("option", {
      value: g.name, "data-default": String(g.default),
      text: `${g.name}${g.default ? " (default)" : ""} — ${people(g.identities)}`,
    })));
    if (data.items.some((g) => g.name === chosen)) gallerySelect.value = chosen;
  } catch (error) {
    gallerySelect.replaceChildren(element("option", { value: "", "data-default": "true", text: "default" }));
  }
}

async function refresh() {
  showError(null);
  await loadGalleries(); // the people counts of the list change with every enrollment
  try {
    model = await api("GET", `${base()}/model`);
    const engine = model.engine ? ` on ${model.engine.engine}` : "";
    $("model").textContent = `${describeDecision(model.gallery)} Model ${model.name} (${model.fingerprint.slice(0, 12)}…)${engine}.`;
  } catch (error) {
    $("model").textContent = "The model could not be read.";
    showError(error);
    return;
  }
  await loadPeople(true);
}

// ----------------------------------------------------------------------------------------
// Identify: a photo (dropped, chosen, or a camera frame), every face boxed and named

function faceModel() {
  return Boolean(model && model.preprocessing && model.preprocessing.face);
}

async function identify(blob, name) {
  const out = $("identify-result");
  const form = new FormData();
  form.append("image", blob, name || "photo.jpg");
  const everyFace = faceModel();
  try {
    const data = await api("POST", `${base()}/identify?k=3&every_face=${everyFace}`, form);
    await showAnswers(blob, data.results);
    showError(null);
  } catch (error) {
    if (!liveTimer) out.replaceChildren();
    showError(error);
  }
}

async function showAnswers(blob, answers) {
  const out = $("identify-result");
  const bitmap = await createImageBitmap(blob);
  const canvas = element("canvas", { id: "identify-canvas", role: "img" });
  const scale = Math.min(1, 900 / bitmap.width);
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const faces = answers.filter((a) => a.box);
  context.lineWidth = Math.max(2, canvas.width / 300);
  context.font = `${Math.max(14, canvas.width / 40)}px system-ui, sans-serif`;
  for (const answer of faces) {
    const [left, top, right, bottom] = answer.box.map((v) => v * scale);
    const known = Boolean(answer.identity);
    context.strokeStyle = known ? "#1a6e2e" : "#a12b2b";
    context.strokeRect(left, top, right - left, bottom - top);
    const label = answer.decision;
    const width = context.measureText(label).width + 10;
    const height = parseInt(context.font, 10) + 8;
    context.fillStyle = known ? "#1a6e2e" : "#a12b2b";
    context.fillRect(left, Math.max(0, top - height), width, height);
    context.fillStyle = "#fff";
    context.fillText(label, left + 5, Math.max(0, top - height) + height - 6);
  }
  canvas.setAttribute("aria-label", `the photo, ${faces.length} face(s) marked`);

  const main = answers[0];
  const children = [element("div", { class: "stage" }, [canvas])];
  if (!main) {
    children.push(element("p", { class: "decision no-face", id: "decision", text: "no face found" }));
    out.replaceChildren(...children);
    return;
  }
  const kind = main.no_face ? "no-face" : (main.identity ? "known" : "unknown");
  children.push(element("p", { class: `decision ${kind}`, id: "decision", text: main.decision }));
  if (answers.length > 1) {
    children.push(element("ol", { class: "faces", "aria-label": "every face, left to right in the list as found" },
      answers.map((a) => element("li", { text: `${a.decision}${a.distance === null ? "" : ` (distance ${a.distance.toFixed(3)})`}` }))));
  }
  const list = element("div", { class: "candidates", "aria-label": "the closest enrolled people" });
  for (const candidate of main.candidates) {
    const card = element("div", {
      class: "candidate" + (candidate.identity === main.identity ? " accepted" : ""),
    });
    card.appendChild(picture(await thumbnail(candidate.identity), candidate.identity));
    card.appendChild(element("div", { text: candidate.identity }));
    card.appendChild(element("div", { class: "muted", text: `distance ${candidate.distance.toFixed(3)}` }));
    list.appendChild(card);
  }
  children.push(list);
  if (!main.no_face) children.push(element("p", { class: "muted", id: "evidence", text: evidence(main) }));
  if (main.ambiguous) {
    children.push(element("p", { class: "note", text: "Two enrolled people fit about equally well: a person should look." }));
  }
  // the whole answer at once: the decision never shows before its candidates
  out.replaceChildren(...children);
}

// what the decision rests on: the gallery's threshold at its size and the share of strangers
// it is estimated to accept there, and a warning when two people fit about equally
function evidence(answer) {
  const rate = answer.estimated_fpir === null ? "unknown" : percent(answer.estimated_fpir);
  const rule = answer.rule === "fpir" ? `FPIR ${answer.target}` : `pair FAR ${answer.target}`;
  const scale = answer.normalised_threshold === null
    ? `threshold ${answer.threshold.toFixed(3)}`
    : `normalised score ${answer.score === null ? "—" : answer.score.toFixed(2)}, threshold ${answer.normalised_threshold.toFixed(2)}`;
  const doubt = answer.ambiguous ? "; ambiguous: the runner-up fits about as well" : "";
  return `${scale} (${rule}; strangers accepted at this gallery's size: about ${rate})${doubt}`;
}

$("identify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("identify-file").files[0];
  if (!file) {
    showError(new ApiError("invalid_request", "choose or drop a photo first", null));
    return;
  }
  $("identify-result").replaceChildren(element("p", { class: "muted", text: "identifying…" }));
  identify(file, file.name);
});

function dropZone(zone, input, onFiles) {
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = [...event.dataTransfer.files].filter((f) => f.type.startsWith("image/"));
    if (!files.length) {
      showError(new ApiError("unsupported_media_type", "drop image files", null));
      return;
    }
    const transfer = new DataTransfer();
    for (const file of input.multiple ? files : files.slice(0, 1)) transfer.items.add(file);
    input.files = transfer.files;
    onFiles(input.files);
  });
}

dropZone($("identify-drop"), $("identify-file"), (files) => $("identify-form").requestSubmit());
dropZone($("enroll-drop"), $("enroll-files"), () => {});

// The camera: one frame on request, or one a second while "live" is on
async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError(new ApiError("camera", "this browser offers no camera here (it needs https or localhost)", null));
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
    $("camera-video").srcObject = stream;
    $("camera").hidden = false;
    $("camera-snap").focus();
  } catch (error) {
    showError(new ApiError("camera", `the camera could not start (${error.name})`, null));
  }
}

function stopCamera() {
  const video = $("camera-video");
  if (video.srcObject) for (const track of video.srcObject.getTracks()) track.stop();
  video.srcObject = null;
  $("camera").hidden = true;
  $("camera-live").checked = false;
  clearInterval(liveTimer);
  liveTimer = null;
}

function frame() {
  const video = $("camera-video");
  if (!video.videoWidth) return Promise.resolve(null);
  const canvas = element("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

let busy = false;
async function identifyFrame() {
  if (busy) return; // a frame a second at most, never a queue of them
  busy = true;
  try {
    const blob = await frame();
    if (blob) await identify(blob, "camera.jpg");
  } finally {
    busy = false;
  }
}

$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
$("camera-snap").addEventListener("click", identifyFrame);
$("camera-live").addEventListener("change", (event) => {
  clearInterval(liveTimer);
  liveTimer = event.target.checked ? setInterval(identifyFrame, 1000) : null;
});

// ----------------------------------------------------------------------------------------
// People: a grid of thumbnails, searched by name, a page at a time; one person's photos

async function loadPeople(fresh) {
  const list = $("people");
  if (fresh) {
    peopleAfter = null;
    list.replaceChildren();
    $("person").hidden = true;
  }
  const query = $("people-search").value.trim();
  const params = new URLSearchParams({ limit: "60" });
  if (query) params.set("q", query);
  if (peopleAfter) params.set("after", peopleAfter);
  try {
    const page = await api("GET", `${base()}/identities?${params}`);
    $("people-count").textContent = `(${page.total}${query ? ` matching “${query}”` : ""})`;
    for (const person of page.items) list.appendChild(await personCard(person));
    peopleAfter = page.next_after;
    $("people-more").hidden = !page.next_after;
    if (fresh && !page.items.length) {
      list.appendChild(element("li", { class: "muted", text: query ? "nobody by that name" : "nobody enrolled yet" }));
    }
  } catch (error) {
    showError(error);
  }
}

async function personCard(person) {
  const open = element("button", { type: "button", class: "open", "aria-label": `${person.name}: ${person.examples} photo(s); show them` }, [
    picture(await thumbnail(person.name), person.name),
    element("div", { class: "name", text: person.name }),
    element("div", { class: "muted", text: `${person.examples} photo(s)` }),
  ]);
  open.addEventListener("click", () => showPerson(person.name));
  const remove = element("button", { type: "button", class: "danger remove", text: "Remove", "aria-label": `remove ${person.name}` });
  remove.addEventListener("click", () => removePerson(person.name));
  return element("li", { "data-name": person.name }, [open, remove]);
}

async function removePerson(name) {
  if (!confirm(`Remove ${name} and all their photos from the gallery?`)) return;
  try {
    await api("DELETE", `${base()}/identities/${encodeURIComponent(name)}`);
    thumbnails.delete(`${base()}|${name}`);
    await refresh();
  } catch (error) {
    showError(error);
  }
}

async function showPerson(name) {
  const panel = $("person");
  panel.hidden = false;
  panel.replaceChildren(element("p", { class: "muted", text: `loading ${name}…` }));
  try {
    const page = await api("GET", `${base()}/identities/${encodeURIComponent(name)}/examples?limit=100`);
    const examples = element("ul", { class: "examples", "aria-label": `${name}'s photos` });
    for (const example of page.items) {
      const drop = element("button", { type: "button", class: "danger", text: "Remove photo", "aria-label": `remove photo ${example.source || example.id}` });
      drop.addEventListener("click", async () => {
        try {
          await api("DELETE", `${base()}/identities/${encodeURIComponent(name)}/examples/${example.id}`);
          thumbnails.delete(`${base()}|${name}`);
          await showPerson(name);
          await loadPeople(true);
          $("person").hidden = false;
        } catch (error) {
          showError(error);
        }
      });
      examples.appendChild(element("li", {}, [
        picture(await exampleImage(name, example.id), example.source || `photo ${example.id}`),
        element("div", { class: "muted", text: example.source || `photo ${example.id}` }),
        drop,
      ]));
    }
    const input = element("input", { type: "file", accept: "image/*", multiple: "", id: "person-files" });
    const add = element("button", { type: "button", text: "Add these photos" });
    add.addEventListener("click", async () => {
      if (!input.files.length) return;
      const form = new FormData();
      for (const file of input.files) form.append("images", file);
      try {
        const data = await api("POST", `${base()}/identities/${encodeURIComponent(name)}/examples`, form);
        await showPerson(name);
        $("person").prepend(element("p", { class: "muted", text: added(data) }));
        thumbnails.delete(`${base()}|${name}`);
      } catch (error) {
        showError(error);
      }
    });
    const close = element("button", { type: "button", class: "secondary", text: "Close" });
    close.addEventListener("click", () => { panel.hidden = true; });
    panel.replaceChildren(
      element("h3", { text: `${name} — ${page.total} photo(s)` }),
      examples,
      element("div", { class: "actions" }, [element("label", { for: "person-files" }, ["More photos", input]), add, close]),
    );
  } catch (error) {
    panel.hidden = true;
    showError(error);
  }
}

function added(data) {
  return `${data.identity}: ${data.added.length} photo(s) added` +
    (data.no_face.length ? `; no face in ${data.no_face.join(", ")}` : "") +
    (data.already_enrolled && data.already_enrolled.length ? `; already enrolled: ${data.already_enrolled.join(", ")}` : "");
}

let searchTimer = null;
$("people-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadPeople(true), 250);
});
$("people-more").addEventListener("click", () => loadPeople(false));

// ----------------------------------------------------------------------------------------
// Enroll

$("enroll-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("enroll-name").value.trim();
  const files = $("enroll-files").files;
  const form = new FormData();
  form.append("name", name);
  for (const file of files) form.append("images", file);
  const out = $("enroll-result");
  out.textContent = "enrolling…";
  try {
    const data = await api("POST", `${base()}/identities`, form);
    out.textContent = added(data).replace(" added", " enrolled");
    event.target.reset();
    await refresh();
  } catch (error) {
    out.textContent = "";
    showError(error);
  }
});

// ----------------------------------------------------------------------------------------

keyInput.addEventListener("change", async () => {
  localStorage.setItem("siamese-api-key", keyInput.value.trim());
  thumbnails.clear();
  await refresh();
});
gallerySelect.addEventListener("change", () => {
  localStorage.setItem("siamese-gallery", gallerySelect.value);
  refresh();
});

refresh();
