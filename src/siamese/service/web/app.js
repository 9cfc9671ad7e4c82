// The service's page: identify a photo, enrol a person, list and delete people.
// Plain JavaScript against the REST API (/v1/...); the API key is kept in localStorage.
"use strict";

const keyInput = document.getElementById("api-key");
keyInput.value = localStorage.getItem("siamese-api-key") || "";
keyInput.addEventListener("change", () => {
  localStorage.setItem("siamese-api-key", keyInput.value.trim());
  refresh();
});

function headers() {
  const key = keyInput.value.trim();
  return key ? { "X-API-Key": key } : {};
}

function showError(message) {
  document.getElementById("error").textContent = message || "";
}

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || { code: response.status, message: response.statusText };
    throw new Error(`${error.code}: ${error.message}`);
  }
  return data;
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

async function thumbnail(identity) {
  // the first enrolled example's image, when the gallery keeps images
  try {
    const page = await api("GET", `/v1/identities/${encodeURIComponent(identity)}/examples?limit=1`);
    if (!page.items.length) return null;
    const response = await fetch(
      `/v1/identities/${encodeURIComponent(identity)}/examples/${page.items[0].id}/image`,
      { headers: headers() });
    if (!response.ok) return null;
    return URL.createObjectURL(await response.blob());
  } catch (error) {
    return null;
  }
}

document.getElementById("identify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const file = document.getElementById("identify-file").files[0];
  const out = document.getElementById("identify-result");
  out.textContent = "identifying…";
  const form = new FormData();
  form.append("image", file);
  try {
    const data = await api("POST", "/v1/identify?k=3", form);
    const answer = data.results[0];
    const kind = answer.no_face ? "no-face" : (answer.identity ? "known" : "unknown");
    const list = element("div", { class: "candidates" });
    for (const candidate of answer.candidates) {
      const card = element("div", {
        class: "candidate" + (candidate.identity === answer.identity ? " accepted" : ""),
      });
      const src = await thumbnail(candidate.identity);
      card.appendChild(src ? element("img", { src, alt: candidate.identity }) : element("div", { class: "probe" }));
      card.appendChild(element("div", { text: candidate.identity }));
      card.appendChild(element("div", { class: "muted", text: `distance ${candidate.distance.toFixed(3)}` }));
      list.appendChild(card);
    }
    // the whole answer at once: the decision never shows before its candidates
    out.replaceChildren(
      element("img", { class: "probe", src: URL.createObjectURL(file), alt: "the photo" }),
      element("p", { class: `decision ${kind}`, id: "decision", text: answer.decision }),
      list,
      element("p", { class: "muted", id: "evidence", text: evidence(answer) }),
    );
  } catch (error) {
    out.textContent = "";
    showError(error.message);
  }
});

// what the decision rests on: the gallery's threshold at its size and the share of strangers
// it is estimated to accept there, and a warning when two people fit about equally
function evidence(answer) {
  const rate = answer.estimated_fpir === null ? "unknown" : `${(100 * answer.estimated_fpir).toPrecision(2)} %`;
  const rule = answer.rule === "fpir" ? `FPIR ${answer.target}` : `pair FAR ${answer.target}`;
  const scale = answer.normalised_threshold === null
    ? `threshold ${answer.threshold.toFixed(3)}`
    : `normalised score ${answer.score === null ? "—" : answer.score.toFixed(2)}, threshold ${answer.normalised_threshold.toFixed(2)}`;
  const doubt = answer.ambiguous ? "; ambiguous: the runner-up fits about as well" : "";
  return `${scale} (${rule}; strangers accepted at this gallery's size: about ${rate})${doubt}`;
}

document.getElementById("enroll-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const name = document.getElementById("enroll-name").value.trim();
  const files = document.getElementById("enroll-files").files;
  const form = new FormData();
  form.append("name", name);
  for (const file of files) form.append("images", file);
  const out = document.getElementById("enroll-result");
  try {
    const data = await api("POST", "/v1/identities", form);
    out.textContent = `${data.identity}: ${data.added.length} image(s) enrolled` +
      (data.no_face.length ? `; no face in ${data.no_face.join(", ")}` : "");
    event.target.reset();
    refresh();
  } catch (error) {
    out.textContent = "";
    showError(error.message);
  }
});

async function refresh() {
  const list = document.getElementById("people");
  try {
    const model = await api("GET", "/v1/model");
    document.getElementById("model").textContent =
      `model ${model.name} (${model.fingerprint.slice(0, 12)}…), threshold ${model.gallery_threshold.toFixed(3)} ` +
      `for ${model.gallery.identities} identities (${model.gallery.rule.toUpperCase()} ${model.gallery.target})`;
    const page = await api("GET", "/v1/identities?limit=500");
    list.textContent = "";
    for (const person of page.items) {
      const remove = element("button", { type: "button", text: "delete" });
      remove.addEventListener("click", async () => {
        if (!confirm(`Delete ${person.name} and their images?`)) return;
        try {
          await api("DELETE", `/v1/identities/${encodeURIComponent(person.name)}`);
          refresh();
        } catch (error) {
          showError(error.message);
        }
      });
      list.appendChild(element("li", { "data-name": person.name },
        [document.createTextNode(`${person.name} (${person.examples} image(s))`), remove]));
    }
  } catch (error) {
    showError(error.message);
  }
}

refresh();
