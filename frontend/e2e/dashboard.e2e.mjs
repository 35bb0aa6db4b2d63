// End-to-end: the real FastAPI app with the shipped model, serving the built dashboard, driven by Debian's
// Chromium through playwright-core. Run from frontend/ after `npm run build`: `npm run e2e`.
// Saves screenshots of the main views to $SCREENSHOTS_DIR (`make screenshots` sets docs/screenshots/, the README's);
// otherwise to a temporary folder, so a test run leaves the working tree clean.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { createServer } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const SAMPLES = path.join(ROOT, "tests", "data", "samples");
const SCREENSHOTS = process.env.SCREENSHOTS_DIR || mkdtempSync(path.join(os.tmpdir(), "detecteur-screenshots-"));
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const DETECTEUR = process.env.DETECTEUR_BIN || path.join(ROOT, ".venv", "bin", "detecteur");
const FACE = path.join(SAMPLES, "stylegan-ffhq-fake-00ELJIYESN.jpg");
const SECOND_FACE = path.join(SAMPLES, "lfw-faceswap-real-real_105.jpg");
const PASTED = path.join(SAMPLES, "stylegan-ffhq-real-00006.jpg");
// The video test's clip is encoded at test time with the project's Python (PyAV), not committed.
const PYTHON = path.join(path.dirname(DETECTEUR), "python");
const MAKE_CLIP = path.join(ROOT, "frontend", "e2e", "make_clip.py");
// The provenance test's files (a C2PA-signed face, its test CA, a PNG with Stable Diffusion parameters), made with
// the provenance test fixtures at test time.
const MAKE_PROVENANCE = path.join(ROOT, "frontend", "e2e", "make_provenance.py");
const SERVER_START_SECONDS = 180;

let server;
// A second server that trusts the provenance test's CA and decides with a tiny stability margin (see below).
let trustingServer;
let serverLog = "";
let browser;
let page;
let baseUrl;
const requested = [];
const policyViolations = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function waitForHealth(running, url, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (running.exitCode !== null) throw new Error(`detecteur serve exited (${running.exitCode}):\n${serverLog}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the API was not ready within ${seconds} s:\n${serverLog}`);
}

/** `detecteur serve` on a free port with the built dashboard and `env` on top of this process's environment. */
async function startServer(env) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = spawn(DETECTEUR, ["serve", "--port", String(port)], {
    cwd: ROOT,
    env: { ...process.env, DETECTEUR_DASHBOARD_DIR: path.join(ROOT, "frontend", "out"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk) => (serverLog = (serverLog + chunk).slice(-20000));
  started.stdout.on("data", keep);
  started.stderr.on("data", keep);
  await waitForHealth(started, url, SERVER_START_SECONDS);
  return { process: started, url };
}

async function stopServer(running) {
  if (running && running.exitCode === null) {
    running.kill("SIGTERM");
    await new Promise((resolve) => running.once("exit", resolve));
  }
}

let provenance;
function provenanceDir() {
  provenance ??= mkdtempSync(path.join(os.tmpdir(), "detecteur-provenance-"));
  return provenance;
}

function provenanceFile(name) {
  return path.join(provenanceDir(), name);
}

async function shoot(name, { fullPage = true } = {}) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage });
}

async function openTab(name) {
  await page.getByRole("tab", { name: new RegExp(`^${name}`) }).click();
  await page.locator(`#panel-${name.toLowerCase()}`).waitFor({ state: "visible" });
}

before(async () => {
  assert.ok(existsSync(path.join(ROOT, "frontend", "out", "index.html")), "build the dashboard first: npm run build");
  assert.ok(existsSync(DETECTEUR), `no ${DETECTEUR}: run make install`);
  ({ process: server, url: baseUrl } = await startServer({}));

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1, colorScheme: "dark" });
  page = await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  page.on("request", (request) => requested.push(request.url()));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) policyViolations.push(message.text());
  });
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  await stopServer(trustingServer);
});

test("the dashboard is served by the API at /", async () => {
  const response = await page.goto(`${baseUrl}/`);
  assert.equal(response.status(), 200);
  await page.getByRole("heading", { name: "Détecteur" }).waitFor();
  assert.equal(await page.getByRole("tab", { name: /^Analyse/ }).getAttribute("aria-selected"), "true");
});

test("uploading a face image shows a verdict and a box on the face", async () => {
  await page.getByTestId("file-input").setInputFiles([FACE, SECOND_FACE]);
  const analyses = page.getByTestId("analysis");
  await page.waitForFunction(() =>
    [...document.querySelectorAll('[data-testid="analysis"]')].every((node) => node.dataset.state === "done"),
  );
  assert.equal(await analyses.count(), 2);
  const first = analyses.filter({ hasText: path.basename(FACE) });
  const box = first.getByTestId("face-box");
  assert.ok((await box.count()) >= 1, "a box on the detected face");
  const verdict = await box.first().getAttribute("data-verdict");
  assert.match(verdict, /^(authentic|borderline|synthetic)$/);
  assert.equal(await first.getByTestId("face-card").first().locator(`[data-verdict="${verdict}"]`).count(), 1);
  const boxSize = await box.first().boundingBox();
  assert.ok(boxSize.width > 20 && boxSize.height > 20, `the box is drawn (${JSON.stringify(boxSize)})`);
  assert.match(await first.getByTestId("timings").innerText(), /Server time \d+ ms/);
  assert.ok(await first.getByRole("meter").first().isVisible(), "the probability bar is shown");
});

test("show evidence overlays the Grad-CAM heatmap on the face", async () => {
  const first = page.getByTestId("analysis").filter({ hasText: path.basename(FACE) });
  assert.equal(await first.getByTestId("heatmap-overlay").count(), 0);
  const toggle = first.getByRole("button", { name: "Show evidence" }).first();
  await toggle.focus();
  await page.keyboard.press("Enter"); // keyboard-usable
  await first.getByTestId("heatmap-overlay").first().waitFor({ state: "visible" });
  assert.equal(await first.getByRole("button", { name: "Hide evidence" }).first().getAttribute("aria-pressed"), "true");
  const loaded = await first
    .getByTestId("heatmap-overlay")
    .first()
    .evaluate((image) => image.complete && image.naturalWidth > 0);
  assert.ok(loaded, "the heatmap PNG decodes");
  await first.scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollTo(0, 0));
  await shoot("analyse");
});

test("uploading a non-image shows the API's error in plain words", async () => {
  await page.getByTestId("file-input").setInputFiles({
    name: "notes.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("this is not an image\n"),
  });
  const failed = page.getByTestId("analysis").filter({ hasText: "notes.txt" });
  const error = failed.getByTestId("analysis-error");
  await error.waitFor();
  assert.equal(await failed.getAttribute("data-state"), "failed");
  assert.match(await error.innerText(), /Unsupported file/);
  await failed.screenshot({ path: path.join(SCREENSHOTS, "error.png") });
});

test("an image without a face is judged whole, and says so", async () => {
  const noFace = path.join(ROOT, "models", "figures", "roc.png"); // a plot: no face in it
  await page.getByTestId("file-input").setInputFiles(noFace);
  const judged = page.getByTestId("analysis").filter({ hasText: "roc.png" });
  await judged.getByTestId("no-face").waitFor();
  assert.match(await judged.getByTestId("no-face").innerText(), /No face found — judged the whole image/);
  assert.equal(await judged.getByTestId("face-box").count(), 0, "no box without a face");
  assert.equal(await judged.getByTestId("face-card").count(), 1);
});

test("pasting an image from the clipboard analyses it", async () => {
  const bytes = readFileSync(PASTED).toString("base64");
  await page.evaluate(
    ([base64, name]) => {
      const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([data], name, { type: "image/jpeg" }));
      window.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
    },
    [bytes, path.basename(PASTED)],
  );
  const pasted = page.getByTestId("analysis").filter({ hasText: path.basename(PASTED) });
  await pasted.and(page.locator('[data-state="done"]')).waitFor();
  assert.ok((await pasted.getByTestId("face-box").count()) >= 1);
});

test("the history survives a reload and lists every judged image", async () => {
  await page.reload();
  await openTab("History");
  const entries = page.getByTestId("history-entry");
  await entries.first().waitFor();
  assert.equal(await entries.count(), 4, "four judged images; the failed upload is not history");
  assert.ok((await page.getByRole("tab", { name: /^History/ }).innerText()).includes("4"));
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  const csv = await (await download).path();
  const text = readFileSync(csv, "utf8");
  assert.match(text.split("\r\n")[0], /^analysed_at,filename,image_verdict/);
  assert.ok(text.includes(path.basename(FACE)));
  await shoot("history");
});

test("the model view shows the running model, its figures and its limitations", async () => {
  await openTab("Model");
  const view = page.getByTestId("model-view");
  await view.waitFor();
  await view.getByRole("heading", { name: /Limitations/ }).waitFor();
  const figures = view.locator("figure img");
  assert.ok((await figures.count()) >= 1, "the model card's figures");
  await page.waitForFunction(() =>
    [...document.querySelectorAll('[data-testid="model-view"] figure img')].every((image) => image.complete && image.naturalWidth > 0),
  );
  await page.evaluate(() => window.scrollTo(0, 0));
  await shoot("model", { fullPage: false }); // the figures below are models/figures/*.png already
});

test("clearing the history empties it", async () => {
  await openTab("History");
  await page.getByRole("button", { name: "Clear history" }).click();
  await page.getByRole("button", { name: /^Yes, clear/ }).click();
  assert.equal(await page.getByTestId("history-entry").count(), 0);
  await page.reload();
  await openTab("History");
  assert.equal(await page.getByTestId("history-entry").count(), 0);
});

test("uploading a video shows its verdict, a box per track, the track table and a chart that seeks the video", async () => {
  const clip = path.join(mkdtempSync(path.join(os.tmpdir(), "detecteur-clip-")), "two-faces.webm");
  const made = spawnSync(PYTHON, [MAKE_CLIP, clip], { encoding: "utf8" });
  assert.equal(made.status, 0, `make_clip.py failed:\n${made.stderr}`);

  await openTab("Video");
  await page.getByTestId("video-file-input").setInputFiles(clip);
  const analysis = page.getByTestId("video-analysis");
  await analysis.and(page.locator('[data-state="done"]')).waitFor();

  const verdict = await analysis.getByTestId("video-verdict").locator("[data-verdict]").first().getAttribute("data-verdict");
  assert.match(verdict, /^(authentic|borderline|synthetic)$/);
  assert.ok(await analysis.getByRole("meter", { name: "Video fake probability" }).isVisible());
  const rows = analysis.getByTestId("track-row");
  assert.equal(await rows.count(), 2, "one row per person in the clip");
  assert.equal(await rows.first().getAttribute("data-verdict"), verdict, "the first row is the video's verdict");
  assert.equal(await analysis.getByTestId("chart-track").count(), 2, "one line per track");
  assert.match(await analysis.getByTestId("chart-track").first().locator("path").getAttribute("d"), /^M[\d.]+ [\d.]+( L[\d.]+ [\d.]+)+$/);
  assert.equal(await analysis.getByTestId("chart-band").count(), 1);
  assert.equal(await analysis.getByTestId("chart-threshold").count(), 1);

  // The browser plays the clip from its blob: URL (the page's CSP allows blob: media), boxes on both faces.
  const player = analysis.locator("video");
  await page
    .waitForFunction(() => document.querySelector('[data-testid="video-player"] video').readyState >= 2, null, { timeout: 20_000 })
    .catch((error) => assert.fail(`the clip does not play (${policyViolations.join(" | ") || error.message})`));
  assert.equal(await analysis.getByTestId("video-face-box").count(), 2);

  // A click on the chart seeks the video there; the arrow keys step one sampled frame.
  await analysis.getByTestId("video-chart").scrollIntoViewIfNeeded();
  const chart = await analysis.getByTestId("video-chart").boundingBox();
  const seeked = () => player.evaluate((video) => (video.seeking ? new Promise((done) => video.addEventListener("seeked", done, { once: true })) : null));
  await page.mouse.click(chart.x + chart.width * 0.55, chart.y + chart.height / 2);
  await seeked();
  const clicked = await player.evaluate((video) => video.currentTime);
  assert.ok(clicked > 1.5 && clicked < 2.5, `the click seeks to about the middle of the 4 s clip (${clicked})`);
  await analysis.getByRole("slider", { name: /fake-probability chart/ }).focus();
  await page.keyboard.press("ArrowLeft");
  await seeked();
  const stepped = await player.evaluate((video) => video.currentTime);
  assert.ok(stepped < clicked && stepped >= 1, `ArrowLeft steps back one sample (${clicked} → ${stepped})`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="video-face-box"]').length === 2);
  assert.deepEqual(policyViolations, []);
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  await shoot("video");

  // The judged clip is history too: its verdict, a frame from the clip, one box per person seen in that frame.
  await openTab("History");
  const entries = page.getByTestId("history-entry");
  const clipEntry = entries.and(page.locator('[data-media="video"]'));
  await clipEntry.waitFor();
  assert.equal(await entries.count(), 1, "the history was cleared before the clip");
  assert.match(await clipEntry.innerText(), /video [\d.]+ s · 2 people/);
  assert.equal(await clipEntry.locator('img[alt^="Thumbnail of two-faces.webm"]').count(), 1, "a frame of the clip");
  assert.equal(await clipEntry.getByTestId("face-box").count(), 2);
  await openTab("Video");
});

test("a file that is not a video gets the API's reason in plain words", async () => {
  await page.getByTestId("video-file-input").setInputFiles({
    name: "notes.mp4",
    mimeType: "video/mp4",
    buffer: Buffer.from("this is not a video\n"),
  });
  const error = page.getByTestId("video-error");
  await error.waitFor();
  assert.match(await error.innerText(), /Unsupported file/);
});

test("the evidence panel shows the Content Credentials and metadata lines, and the history keeps them", async () => {
  const made = spawnSync(PYTHON, [MAKE_PROVENANCE, provenanceDir()], { encoding: "utf8" });
  assert.equal(made.status, 0, `make_provenance.py failed:\n${made.stderr}`);
  await openTab("Analyse");
  await page.getByTestId("file-input").setInputFiles([provenanceFile("signed-face.jpg"), provenanceFile("sd-parameters.png")]);
  const signed = page.getByTestId("analysis").filter({ hasText: "signed-face.jpg" });
  const parameters = page.getByTestId("analysis").filter({ hasText: "sd-parameters.png" });
  await signed.and(page.locator('[data-state="done"]')).waitFor();
  await parameters.and(page.locator('[data-state="done"]')).waitFor();

  // Signed by a certificate this server does not trust: reported, but no stronger than the pixel model.
  const credentials = await signed.getByTestId("evidence-content_credentials").innerText();
  assert.match(credentials, /Content Credentials \(C2PA\)/);
  assert.match(credentials, /moderate, points to synthetic/);
  assert.match(credentials, /Detecteur test signer, a certificate this service does not trust declare the content AI-generated \(trainedAlgorithmicMedia\)/);
  assert.match(await signed.getByTestId("evidence-summary").innerText(), /^Summary \(moderate evidence\):/);
  assert.match(await signed.getByTestId("face-stability").first().innerText(), /^moves [\d.]+ pts under a 4 px shift/);
  const metadata = await parameters.getByTestId("evidence-metadata").innerText();
  assert.match(metadata, /File metadata\s+moderate, points to synthetic/);
  assert.match(metadata, /Stable Diffusion \(AUTOMATIC1111 \/ Forge\) generation parameters/);
  await signed.getByTestId("evidence").scrollIntoViewIfNeeded();
  await signed.screenshot({ path: path.join(SCREENSHOTS, "evidence.png") });

  await openTab("History");
  const signedEntry = page.getByTestId("history-entry").filter({ hasText: "signed-face.jpg" });
  assert.match(await signedEntry.getByTestId("history-evidence").innerText(), /credentials untrusted · metadata absent/);
  assert.match(
    await page.getByTestId("history-entry").filter({ hasText: "sd-parameters.png" }).getByTestId("history-evidence").innerText(),
    /credentials absent · metadata present/,
  );
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  const rows = readFileSync(await (await download).path(), "utf8").split("\r\n");
  const header = rows[0].split(",");
  const signedRow = rows.find((row) => row.includes("signed-face.jpg")).split(",");
  assert.equal(signedRow[header.indexOf("content_credentials")], "untrusted");
  assert.equal(signedRow[header.indexOf("metadata")], "absent");
  assert.match(signedRow[header.indexOf("face_stability_spread")], /^\d\.\d{4}$/);
});

test("with a trusted signature and a tiny stability margin: decisive credentials beside an uncertain face", async () => {
  // The shipped model's margin leaves every sample face decided, so this server is told to accept almost no
  // movement (DETECTEUR_STABILITY_MARGIN, a documented setting): the signed face, decided by the shipped model but
  // moved a little by the 4 px shift, turns uncertain through the real engine. It also trusts the test CA.
  const started = await startServer({
    DETECTEUR_STABILITY_MARGIN: "0.0001",
    DETECTEUR_C2PA_TRUST_ANCHORS: provenanceFile("test-ca.pem"),
  });
  trustingServer = started.process;
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, colorScheme: "dark" });
  try {
    const other = await context.newPage();
    other.setDefaultTimeout(60_000);
    await other.goto(`${started.url}/`);
    await other.getByTestId("file-input").setInputFiles(provenanceFile("signed-face.jpg"));
    const analysis = other.getByTestId("analysis").filter({ hasText: "signed-face.jpg" });
    await analysis.and(other.locator('[data-state="done"]')).waitFor();

    const face = analysis.getByTestId("face-card").first();
    assert.equal(await face.locator('[data-verdict="uncertain"]').count(), 1, "the face's badge says uncertain");
    assert.match(await face.innerText(), /uncertain[\s\S]*no verdict/i);
    assert.equal(await face.getByTestId("face-stability").getAttribute("data-stable"), "false");
    assert.match(await face.getByTestId("face-stability").innerText(), /more than the calibrated margin$/);
    assert.match(await analysis.getByTestId("evidence-pixel_model").innerText(), /says nothing[\s\S]*unsure/);
    assert.match(await analysis.getByTestId("evidence-content_credentials").innerText(), /decisive, points to synthetic/);
    assert.match(await analysis.getByTestId("evidence-summary").innerText(), /^Summary \(decisive evidence\): AI-generated/);
  } finally {
    await context.close();
    await stopServer(trustingServer);
  }
});

test("no request left the machine", () => {
  // Offline by design: no CDN, no web fonts; everything comes from the API's origin (or data:/blob: URLs).
  const outside = requested.filter((url) => !url.startsWith(`${baseUrl}/`) && !/^(data|blob):/.test(url));
  assert.deepEqual(outside, []);
  assert.ok(requested.some((url) => url.includes("/_next/static/")), "the dashboard's own assets were loaded");
  assert.ok(readdirSync(SCREENSHOTS).length >= 3);
});
