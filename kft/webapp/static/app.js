// kft web app: classify with the phone's rear camera or a photo, in this page, offline.
// MediaPipe Tasks' ImageClassifier reads the model's metadata (labels, normalisation) and resizes
// to the model's input itself. The input contract (as kft predict and the Android demo):
//   - a camera frame is classified by its CENTRE SQUARE (a region of interest: MediaPipe crops,
//     then resizes); the guide over the preview shows exactly that square;
//   - a photo file is classified WHOLE (MediaPipe resizes the whole image), as kft predict does.
// The delegate (CPU wasm or GPU WebGL) is chosen by measurement: see pickDelegate().
import { FilesetResolver, ImageClassifier } from "./vendor/mediapipe/vision_bundle.js";

const $ = (id) => document.getElementById(id);
const TOP = 3;
const CAMERA_ON = "kft-camera-on";  // localStorage: the camera ran on the last visit
const params = new URLSearchParams(location.search);
let info = null;
let classifier = null;
let frozen = false;
let lastFrameAt = 0;

function setStatus(text, state = "ready") {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

// --- offline: the service worker ------------------------------------------------------------

// Registers sw.js. On the first visit, waits until it has cached every file and controls this
// page, so the wasm and the model are downloaded once (into the cache) and read from there.
async function offlineReady() {
  if (!("serviceWorker" in navigator)) return "no service worker in this browser";
  const sw = navigator.serviceWorker;
  const hadController = Boolean(sw.controller);
  // A new export (new sw.js) takes over: reload once to show its model.
  sw.addEventListener("controllerchange", () => { if (hadController) location.reload(); });
  let reg;
  try {
    reg = await sw.register("sw.js");
  } catch (err) {
    return sw.controller ? "" : `no offline copy: ${err.message || err}`;
  }
  if (sw.controller) {
    // Ask for sw.js now, before the model and the camera keep the page busy (Chromium then put the
    // check off by up to a minute): a new export is found at once, installs, takes over and the
    // page reloads. Offline this fails at once; a slow network gets 3 s, then the page goes on.
    setStatus("checking for a new model…", "loading");
    await Promise.race([reg.update().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 3000))]);
    return "";
  }
  setStatus("saving the app for offline use…", "loading");
  return new Promise((resolve) => {
    sw.addEventListener("controllerchange", () => resolve(""), { once: true });
    const worker = reg.installing || reg.waiting;
    if (worker) {
      worker.addEventListener("statechange", () => {
        if (worker.state === "redundant") resolve("no offline copy: the service worker failed to install");
      });
    }
  });
}

// --- the model ---------------------------------------------------------------------------------

function probeImage() {
  // A camera-frame-sized picture with structure (gradients and stripes), the same on every load.
  const c = document.createElement("canvas");
  c.width = 640;
  c.height = 480;
  const g = c.getContext("2d");
  const grad = g.createLinearGradient(0, 0, 640, 480);
  grad.addColorStop(0, "#c83c28");
  grad.addColorStop(0.5, "#3ca050");
  grad.addColorStop(1, "#2850c8");
  g.fillStyle = grad;
  g.fillRect(0, 0, 640, 480);
  g.fillStyle = "rgba(255,255,255,0.35)";
  for (let x = 0; x < 640; x += 40) g.fillRect(x, 0, 12, 480);
  return c;
}

function scores(result) {
  // Scores by class index (all classes: maxResults -1).
  const out = new Float32Array(info.labels.length);
  for (const c of result.classifications[0].categories) out[c.index] = c.score;
  return out;
}

function timeClassifier(clf, image, runs) {
  for (let i = 0; i < 2; i++) clf.classify(image);  // warm-up (the GPU compiles its shaders here)
  const ms = [];
  let result = null;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    result = clf.classify(image);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { ms: ms[Math.floor(ms.length / 2)], scores: scores(result) };
}

async function createClassifier(fileset, bytes, delegate) {
  return ImageClassifier.createFromOptions(fileset, {
    baseOptions: { modelAssetBuffer: bytes, delegate },
    maxResults: -1,
    runningMode: "IMAGE",
  });
}

// The delegate: ?delegate=cpu or gpu forces one (GPU falling back to CPU if it fails). Otherwise
// both are timed on a camera-sized probe image (2 warm-up + 5 timed runs each) and the faster is
// kept; the GPU is dropped if it cannot be created, throws, gives non-finite scores or scores
// more than 0.1 away from the CPU's on the probe (the input contract must hold on either). The
// choice is remembered per model and browser (localStorage), so later visits skip the timing.
async function pickDelegate(fileset, bytes) {
  const wanted = (params.get("delegate") || "auto").toUpperCase();
  const memo = `kft-delegate ${info.cache} ${navigator.userAgent}`;
  const choice = { delegate: "CPU", cpu_ms: null, gpu_ms: null, reason: "" };
  if (wanted === "AUTO") {
    try {
      const saved = JSON.parse(localStorage.getItem(memo) || "null");
      if (saved && saved.delegate) {
        try {
          const clf = await createClassifier(fileset, bytes, saved.delegate);
          return { clf, choice: { ...saved, reason: `${saved.reason} (measured on an earlier visit)` } };
        } catch (err) { /* measure again below */ }
      }
    } catch (err) { /* no storage: measure */ }
  }
  const probe = probeImage();
  let cpu = null;
  if (wanted !== "GPU") {
    setStatus(wanted === "AUTO" ? "timing the CPU…" : "loading the model…", "loading");
    cpu = await createClassifier(fileset, bytes, "CPU");
    if (wanted === "CPU") {
      choice.reason = "CPU asked for (?delegate=cpu)";
      return { clf: cpu, choice };
    }
    const t = timeClassifier(cpu, probe, 5);
    choice.cpu_ms = t.ms;
    cpu.probe = t.scores;
  }
  let gpu = null;
  try {
    setStatus("timing the GPU…", "loading");
    gpu = await createClassifier(fileset, bytes, "GPU");
    const t = timeClassifier(gpu, probe, 5);
    if (!t.scores.every(Number.isFinite)) throw new Error("non-finite scores");
    if (cpu) {
      const diff = Math.max(...t.scores.map((s, i) => Math.abs(s - cpu.probe[i])));
      if (diff > 0.1) throw new Error(`scores ${diff.toFixed(2)} away from the CPU's`);
    }
    choice.gpu_ms = t.ms;
  } catch (err) {
    if (gpu) gpu.close();
    gpu = null;
    choice.reason = `GPU unavailable (${String(err.message || err).replace(/\s+/g, " ").trim().slice(0, 100)})`;
  }
  if (wanted === "GPU" && gpu) {
    choice.delegate = "GPU";
    choice.reason = "GPU asked for (?delegate=gpu)";
  } else if (gpu && cpu && choice.gpu_ms < choice.cpu_ms) {
    choice.delegate = "GPU";
    choice.reason = `faster: GPU ${choice.gpu_ms.toFixed(1)} ms vs CPU ${choice.cpu_ms.toFixed(1)} ms`;
  } else if (gpu && cpu) {
    choice.reason = `faster: CPU ${choice.cpu_ms.toFixed(1)} ms vs GPU ${choice.gpu_ms.toFixed(1)} ms`;
  }
  if (choice.delegate === "GPU") {
    if (cpu) cpu.close();
  } else {
    if (gpu) gpu.close();
    if (!cpu) cpu = await createClassifier(fileset, bytes, "CPU");
  }
  if (wanted === "AUTO") {
    try { localStorage.setItem(memo, JSON.stringify(choice)); } catch (err) { /* private mode */ }
  }
  return { clf: choice.delegate === "GPU" ? gpu : cpu, choice };
}

// --- results ----------------------------------------------------------------------------------

function top(result) {
  return [...result.classifications[0].categories].sort((a, b) => b.score - a.score).slice(0, TOP);
}

function pct(score) {
  return `${(100 * score).toFixed(score >= 0.995 || score < 0.1 ? 0 : 1)}%`;
}

function renderResult(box, categories, ms) {
  // Fills a .result element: the top-1 label large, the top 3 with bars, the time.
  const first = categories[0];
  box.dataset.top1 = first ? first.categoryName : "";
  box.querySelector(".top1 .label").textContent = first ? first.categoryName || `#${first.index}` : "—";
  box.querySelector(".top1 .pct").textContent = first ? pct(first.score) : "";
  const bars = box.querySelector(".bars");
  bars.replaceChildren(...categories.map((c) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.label = c.categoryName;
    row.dataset.score = c.score.toFixed(6);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = c.categoryName || `#${c.index}`;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${(100 * c.score).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = pct(c.score);
    row.append(label, track, value);
    return row;
  }));
  box.dataset.ms = ms.toFixed(2);
  box.querySelector(".ms").textContent = `${ms.toFixed(0)} ms`;
}

function resultCard(name) {
  const card = document.createElement("article");
  card.className = "result photo";
  card.dataset.image = name;
  card.innerHTML = '<div class="thumb"></div><div class="body"><div class="name"></div>' +
    '<div class="top1"><span class="label"></span><span class="pct"></span></div><div class="bars"></div>' +
    '<div class="ms"></div></div>';
  card.querySelector(".name").textContent = name;
  return card;
}

// --- photos: classified whole ------------------------------------------------------------------

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`${file.name}: not an image this browser can decode`));
    img.src = URL.createObjectURL(file);
  });
}

async function classifyFiles(files) {
  let first = null;
  for (const file of files) {
    const card = resultCard(file.name);
    try {
      const img = await loadImage(file);
      const t0 = performance.now();
      const result = classifier.classify(img);  // the whole photo: no region of interest
      renderResult(card, top(result), performance.now() - t0);
      img.alt = file.name;
      card.querySelector(".thumb").append(img);
    } catch (err) {
      card.dataset.error = String(err.message || err);
      card.querySelector(".top1 .label").textContent = "not classified";
      card.querySelector(".ms").textContent = card.dataset.error;
      card.classList.add("error");
    }
    $("results").prepend(card);
    first = card;
  }
  if (first) first.scrollIntoView({ behavior: "smooth", block: "nearest" });
  setStatus(`${document.querySelectorAll(".result.photo").length} photo(s) classified`);
}

// --- camera: the centre square of each frame ----------------------------------------------------

// The centre square of a w x h frame, as MediaPipe's normalised region of interest.
function centreSquare(w, h) {
  const side = Math.min(w, h);
  const dx = (1 - side / w) / 2;
  const dy = (1 - side / h) / 2;
  return { left: dx, top: dy, right: 1 - dx, bottom: 1 - dy };
}

function classifyFrame() {
  const video = $("video");
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h || !classifier) return;
  const t0 = performance.now();
  const result = classifier.classify(video, w === h ? undefined : { regionOfInterest: centreSquare(w, h) });
  renderResult($("live"), top(result), performance.now() - t0);
  $("live").dataset.frame = `${w}x${h}`;
}

// Places the guide over the centre square of the frame as the <video> shows it (object-fit: contain).
function placeGuide() {
  const video = $("video");
  const guide = $("guide");
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h) return;
  $("stage").style.setProperty("--frame-ar", `${w} / ${h}`);
  const box = video.getBoundingClientRect();
  const scale = Math.min(box.width / w, box.height / h);
  const side = Math.min(w, h) * scale;
  guide.style.width = guide.style.height = `${side}px`;
  guide.style.left = `${(box.width - side) / 2}px`;
  guide.style.top = `${(box.height - side) / 2}px`;
  guide.hidden = false;
}

function cameraMessage(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Camera blocked: this page may not use the camera (permission denied). Take or pick a photo instead.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "NotReadableError") {
    return "No camera available on this device. Take or pick a photo instead.";
  }
  if (!err) return "No camera here: the browser offers one only to HTTPS pages. Take or pick a photo instead.";
  return `Camera unavailable (${err.message || err}). Take or pick a photo instead.`;
}

function showCameraMessage(text) {
  $("camera-msg").textContent = text;
  $("camera-msg").hidden = false;
  $("stage").dataset.camera = "unavailable";
  $("start-camera").hidden = true;
}

async function startCamera() {
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
    showCameraMessage(cameraMessage(null));
    return;
  }
  const video = $("video");
  $("start-camera").disabled = true;
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: false,
    });
    await video.play();
  } catch (err) {
    showCameraMessage(cameraMessage(err));
    try { localStorage.removeItem(CAMERA_ON); } catch (e) { /* no storage */ }
    return;
  }
  try { localStorage.setItem(CAMERA_ON, "1"); } catch (e) { /* no storage */ }
  $("camera-off").hidden = true;
  $("stage").dataset.camera = "on";
  $("freeze").disabled = false;
  placeGuide();
  video.addEventListener("resize", placeGuide);
  const next = video.requestVideoFrameCallback
    ? (fn) => video.requestVideoFrameCallback(fn) : (fn) => requestAnimationFrame(fn);
  // At most every other moment busy classifying (and at most 15 times a second): the page stays
  // responsive, a phone stays cool, and the browser finds time for its own work (a main thread
  // kept busy with every frame delays even the service worker's update check by a minute).
  let nextAt = 0;
  const loop = () => {
    const now = performance.now();
    if (!frozen && video.currentTime !== lastFrameAt && now >= nextAt) {
      lastFrameAt = video.currentTime;
      classifyFrame();
      const took = performance.now() - now;
      nextAt = now + Math.max(2 * took, 1000 / 15);
    }
    next(loop);
  };
  next(loop);
}

function toggleFreeze() {
  const video = $("video");
  if (!video.srcObject) return;
  frozen = !frozen;
  if (frozen) {
    video.pause();
    classifyFrame();  // the result of exactly the frame that stays on screen
  } else {
    video.play();
  }
  $("frozen").hidden = !frozen;
  $("freeze").textContent = frozen ? "Resume" : "Freeze";
  $("live").dataset.frozen = String(frozen);
}

// --- start ------------------------------------------------------------------------------------

function about(choice) {
  const [h, w] = info.input_size;
  const mb = info.size_bytes >= 1e6 ? `${(info.size_bytes / 1e6).toFixed(1)} MB` : `${Math.round(info.size_bytes / 1e3)} kB`;
  const acc = info.accuracy == null ? "held-out accuracy not measured"
    : `${(100 * info.accuracy).toFixed(1)}% held-out accuracy on ${info.scored_on}`;
  const where = choice.delegate === "GPU" ? "GPU (WebGL)" : "CPU (WebAssembly)";
  $("about").textContent = `${info.name} · ${info.variant} · ${mb} · input ${w}×${h} ${info.input_dtype} · ${acc} · ` +
    `runs on the ${where}`;
  $("about").title = choice.reason;
  Object.assign($("about").dataset, {
    variant: info.variant, delegate: choice.delegate, reason: choice.reason,
    cpuMs: choice.cpu_ms == null ? "" : choice.cpu_ms.toFixed(2),
    gpuMs: choice.gpu_ms == null ? "" : choice.gpu_ms.toFixed(2),
  });
}

async function main() {
  const offline = await offlineReady();
  info = await (await fetch("model.json")).json();
  document.title = `kft · ${info.name}`;
  $("title").textContent = info.name;
  $("about").dataset.variant = info.variant;
  $("about").textContent = `${info.name} · ${info.variant} · loading…`;
  setStatus("loading the model…", "loading");
  const base = new URL("vendor/mediapipe", document.baseURI).href;
  const fileset = await FilesetResolver.forVisionTasks(base);
  const bytes = new Uint8Array(await (await fetch(info.file)).arrayBuffer());
  const picked = await pickDelegate(fileset, bytes);
  classifier = picked.clf;
  about(picked.choice);

  for (const id of ["files", "take"]) {
    $(id).addEventListener("change", async (e) => {
      await classifyFiles([...e.target.files]);
      e.target.value = "";  // the same photo again is a new pick
    });
  }
  $("stage").addEventListener("click", (e) => { if (e.target.id !== "start-camera") toggleFreeze(); });
  $("freeze").addEventListener("click", toggleFreeze);
  $("start-camera").addEventListener("click", startCamera);
  window.addEventListener("resize", placeGuide);
  $("start-camera").disabled = false;
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
    showCameraMessage(cameraMessage(null));
  } else {
    // Start the camera at once where it ran on the last visit and the permission stands
    // (otherwise the "Start camera" tap asks for it: browsers ask best after a user's gesture).
    try {
      const perm = await navigator.permissions.query({ name: "camera" });
      if (perm.state === "granted" && localStorage.getItem(CAMERA_ON)) await startCamera();
    } catch (err) { /* no Permissions API for the camera, or no storage: wait for the tap */ }
  }
  setStatus(offline ? `ready (${offline})` : "ready", "ready");
}

main().catch((err) => setStatus(`error: ${err.message || err}`, "error"));
