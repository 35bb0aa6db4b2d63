/** The session's analyses (images and videos), kept in the browser's local storage: newest first, capped, with
 * small thumbnails so the store never outgrows the browser's quota (about 5 MB); exportable as JSON or CSV. */

import type { Box, Evidence, FaceResult, ImageResult, PredictResponse, Verdict, VideoResponse } from "./types";
import { formatSeconds } from "./video";

export const HISTORY_KEY = "detecteur.history.v1";
export const MAX_ENTRIES = 100;

export interface HistoryFace {
  box: Box | null;
  fake_probability: number;
  verdict: Verdict;
  confidence: number;
  /** Videos only: the person (track) this verdict is about; `box` is where they are in the thumbnail's frame. */
  track_id?: number;
  /** Images only: how far the face's fake probability moved under the stability check's mild degradations
   * (max − min); null when the check was off. Absent from entries stored before evidence was kept. */
  stability_spread?: number | null;
}

/** An image's evidence lines, as kept in the history: the combined reading and each line's status, not the
 * details (signer, markers, degraded probabilities) — those come back by analysing the image again. */
export interface HistoryEvidence {
  conclusion: Evidence["conclusion"];
  strength: Evidence["strength"];
  summary: string;
  content_credentials: Evidence["content_credentials"]["status"];
  metadata: Evidence["metadata"]["status"];
}

export type HistoryMedia = "image" | "video";

export interface HistoryEntry {
  id: string;
  analysed_at: string;
  media: HistoryMedia;
  filename: string;
  width: number;
  height: number;
  /** Videos only (null for images). */
  duration_s: number | null;
  face_detected: boolean;
  verdict: Verdict;
  fake_probability: number;
  confidence: number;
  /** An image's faces, or a video's people (one per track). */
  faces: HistoryFace[];
  total_ms: number;
  model_version: string;
  threshold: number;
  borderline_band: [number, number];
  /** JPEG data URL, at most THUMBNAIL_SIDE px on its long side; null when it could not be made. */
  thumbnail: string | null;
  /** Images: the evidence lines (issue 21). Null for videos and for entries stored before evidence was kept. */
  evidence: HistoryEvidence | null;
}

/** The parts of Storage the store uses, so tests can pass a plain object. */
export type KeyValueStore = Pick<Storage, "getItem" | "setItem" | "removeItem">;

export function entryFrom(
  response: PredictResponse,
  result: ImageResult,
  thumbnail: string | null,
  now: Date = new Date(),
  id: string = randomId(),
): HistoryEntry {
  return {
    id,
    analysed_at: now.toISOString(),
    media: "image",
    filename: result.filename ?? "pasted image",
    width: result.width,
    height: result.height,
    duration_s: null,
    face_detected: result.face_detected,
    verdict: result.verdict,
    fake_probability: result.fake_probability,
    confidence: result.confidence,
    // Heatmaps stay out: they are large and can be recomputed by analysing the image again.
    faces: result.faces.map(({ box, fake_probability, verdict, confidence, stability }) => ({
      box,
      fake_probability,
      verdict,
      confidence,
      stability_spread: spreadOf(stability),
    })),
    total_ms: result.timings.total_ms,
    model_version: response.model_version,
    threshold: response.threshold,
    borderline_band: response.borderline_band,
    thumbnail,
    evidence: evidenceOf(result.evidence),
  };
}

function spreadOf(stability: FaceResult["stability"]): number | null {
  return stability ? stability.spread : null;
}

function evidenceOf(evidence: Evidence | undefined): HistoryEvidence | null {
  if (!evidence) return null;
  return {
    conclusion: evidence.conclusion,
    strength: evidence.strength,
    summary: evidence.summary,
    content_credentials: evidence.content_credentials.status,
    metadata: evidence.metadata.status,
  };
}

/** The sampled frame a video's thumbnail shows: where its most suspicious person looks most fake. */
export function thumbnailFrame(response: Pick<VideoResponse, "tracks" | "most_suspicious_track">): {
  sample: number;
  time_s: number;
} | null {
  const track = response.tracks.find((candidate) => candidate.track_id === response.most_suspicious_track);
  if (!track || track.faces.length === 0) return null;
  const face = track.faces.reduce((most, face) => (face.fake_probability > most.fake_probability ? face : most));
  return { sample: face.sample, time_s: face.time_s };
}

/** A video's entry: one face per person (track) with the track's verdict, boxed where they are in the frame
 * `thumbnail` was taken from (`sample`, see `thumbnailFrame`; null for a clip without faces: no boxes). */
export function videoEntryFrom(
  response: VideoResponse,
  thumbnail: string | null,
  sample: number | null,
  now: Date = new Date(),
  id: string = randomId(),
): HistoryEntry {
  return {
    id,
    analysed_at: now.toISOString(),
    media: "video",
    filename: response.filename ?? "video",
    width: response.video.width,
    height: response.video.height,
    duration_s: response.video.duration_s,
    face_detected: response.face_detected,
    verdict: response.verdict,
    fake_probability: response.fake_probability,
    confidence: response.confidence,
    faces: response.tracks.map((track) => ({
      box: (sample === null ? null : track.faces.find((face) => face.sample === sample)?.box) ?? null,
      fake_probability: track.fake_probability,
      verdict: track.verdict,
      confidence: track.confidence,
      track_id: track.track_id,
    })),
    total_ms: response.timings.total_ms,
    model_version: response.model_version,
    threshold: response.threshold,
    borderline_band: response.borderline_band,
    thumbnail,
    evidence: null,
  };
}

/** What was judged, in a few words: "2 faces", "whole image", "video 4.0 s · 2 people". */
export function entrySummary(entry: HistoryEntry): string {
  const count = entry.faces.length;
  if (entry.media === "video") {
    const people = count === 0 ? "no faces" : `${count} ${count === 1 ? "person" : "people"}`;
    return `video ${formatSeconds(entry.duration_s ?? 0)} · ${people}`;
  }
  return entry.face_detected ? `${count} face${count === 1 ? "" : "s"}` : "whole image";
}

/** An entry's evidence in a few words: "evidence: synthetic (decisive) · credentials untrusted · metadata present". */
export function evidenceText(evidence: HistoryEvidence): string {
  const reading = evidence.strength === "none" ? "inconclusive" : `${evidence.conclusion} (${evidence.strength})`;
  return `evidence: ${reading} · credentials ${evidence.content_credentials} · metadata ${evidence.metadata}`;
}

function randomId(): string {
  return typeof crypto !== "undefined" && "randomUUID" in crypto
    ? crypto.randomUUID()
    : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

const VERDICTS: ReadonlySet<string> = new Set(["authentic", "borderline", "synthetic", "uncertain"]);
const MEDIA: ReadonlySet<string> = new Set(["image", "video"]);
const CONCLUSIONS: ReadonlySet<string> = new Set(["synthetic", "authentic", "inconclusive"]);
const STRENGTHS: ReadonlySet<string> = new Set(["decisive", "strong", "moderate", "weak", "none"]);
const CREDENTIAL_STATUSES: ReadonlySet<string> = new Set(["absent", "valid", "untrusted", "invalid", "unreadable"]);
const METADATA_STATUSES: ReadonlySet<string> = new Set(["absent", "present", "unreadable"]);

function isEvidence(value: unknown): value is HistoryEvidence {
  const evidence = value as HistoryEvidence | null;
  return (
    typeof evidence === "object" &&
    evidence !== null &&
    CONCLUSIONS.has(evidence.conclusion) &&
    STRENGTHS.has(evidence.strength) &&
    typeof evidence.summary === "string" &&
    CREDENTIAL_STATUSES.has(evidence.content_credentials) &&
    METADATA_STATUSES.has(evidence.metadata)
  );
}

function isEntry(value: unknown): value is HistoryEntry {
  const entry = value as HistoryEntry | null;
  return (
    typeof entry === "object" &&
    entry !== null &&
    typeof entry.id === "string" &&
    typeof entry.analysed_at === "string" &&
    typeof entry.filename === "string" &&
    (entry.media === undefined || MEDIA.has(entry.media)) &&
    VERDICTS.has(entry.verdict) &&
    typeof entry.fake_probability === "number" &&
    Array.isArray(entry.faces)
  );
}

/** The stored history; anything unreadable (a hand-edited value) is ignored, never thrown. Entries stored
 * before videos were kept are images; entries stored before evidence was kept (or with an evidence block that
 * does not read) have none. */
export function loadHistory(store: KeyValueStore): HistoryEntry[] {
  try {
    const parsed: unknown = JSON.parse(store.getItem(HISTORY_KEY) ?? "[]");
    return Array.isArray(parsed) ? parsed.filter(isEntry).map(upgraded) : [];
  } catch {
    return [];
  }
}

function upgraded(entry: HistoryEntry): HistoryEntry {
  return {
    ...entry,
    media: entry.media ?? "image",
    duration_s: entry.duration_s ?? null,
    // A hand-edited spread that is not a number would break the CSV export: dropped, like unreadable evidence.
    faces: entry.faces.map((face) =>
      face.stability_spread == null || typeof face.stability_spread === "number" ? face : { ...face, stability_spread: null },
    ),
    evidence: isEvidence(entry.evidence) ? entry.evidence : null,
  };
}

/** New entries first, then the old ones, at most MAX_ENTRIES. */
export function prepend(entries: HistoryEntry[], added: HistoryEntry[]): HistoryEntry[] {
  return [...added, ...entries].slice(0, MAX_ENTRIES);
}

/** Store `entries`; when the browser's quota is reached, drop the oldest thumbnails, then the oldest entries,
 * until it fits. Returns what was actually stored. */
export function saveHistory(store: KeyValueStore, entries: HistoryEntry[]): HistoryEntry[] {
  let kept = entries;
  for (;;) {
    try {
      store.setItem(HISTORY_KEY, JSON.stringify(kept));
      return kept;
    } catch (error) {
      if (!isQuotaError(error) || kept.length === 0) throw error;
      const oldestWithThumbnail = kept.findLastIndex((entry) => entry.thumbnail !== null);
      kept =
        oldestWithThumbnail >= 0
          ? kept.map((entry, index) => (index === oldestWithThumbnail ? { ...entry, thumbnail: null } : entry))
          : kept.slice(0, -1);
    }
  }
}

function isQuotaError(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.name === "QuotaExceededError" || error.name === "NS_ERROR_DOM_QUOTA_REACHED" || /quota/i.test(error.message))
  );
}

export function clearHistory(store: KeyValueStore): void {
  store.removeItem(HISTORY_KEY);
}

/** JSON export: the entries without their thumbnails. */
export function toJson(entries: HistoryEntry[]): string {
  return `${JSON.stringify(
    entries.map(({ thumbnail: _thumbnail, ...rest }) => rest),
    null,
    2,
  )}\n`;
}

export const CSV_COLUMNS = [
  "analysed_at",
  "filename",
  "image_verdict",
  "image_fake_probability",
  "face_detected",
  "face_index",
  "face_verdict",
  "face_fake_probability",
  "face_confidence",
  "box_x",
  "box_y",
  "box_width",
  "box_height",
  "model_version",
  "threshold",
  "media",
  "duration_s",
  "track_id",
  "face_stability_spread",
  "evidence_conclusion",
  "evidence_strength",
  "content_credentials",
  "metadata",
  "evidence_summary",
] as const;

/** CSV export, one row per judged face — for a video, per person (track), boxed in its thumbnail's frame
 * (RFC 4180 quoting). The evidence columns repeat the image's evidence on each of its faces' rows, and are empty
 * for videos and for entries stored before evidence was kept. */
export function toCsv(entries: HistoryEntry[]): string {
  const rows: string[][] = [[...CSV_COLUMNS]];
  for (const entry of entries) {
    entry.faces.forEach((face, index) => {
      rows.push([
        entry.analysed_at,
        entry.filename,
        entry.verdict,
        entry.fake_probability.toFixed(4),
        String(entry.face_detected),
        String(index + 1),
        face.verdict,
        face.fake_probability.toFixed(4),
        face.confidence.toFixed(4),
        face.box ? String(face.box.x) : "",
        face.box ? String(face.box.y) : "",
        face.box ? String(face.box.width) : "",
        face.box ? String(face.box.height) : "",
        entry.model_version,
        entry.threshold.toFixed(4),
        entry.media,
        entry.duration_s === null ? "" : entry.duration_s.toFixed(2),
        face.track_id === undefined ? "" : String(face.track_id),
        face.stability_spread == null ? "" : face.stability_spread.toFixed(4),
        ...evidenceCells(entry.evidence),
      ]);
    });
  }
  return `${rows.map((row) => row.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

function evidenceCells(evidence: HistoryEvidence | null): string[] {
  if (!evidence) return ["", "", "", "", ""];
  const { conclusion, strength, content_credentials, metadata, summary } = evidence;
  return [conclusion, strength, content_credentials, metadata, summary];
}

/** Quote when needed; a leading = + - @ (a file name like "=cmd().jpg") is defused so a spreadsheet shows it
 * as text instead of running it as a formula. */
export function csvCell(value: string): string {
  const defused = /^[=+\-@\t\r]/.test(value) && !/^-?\d/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(defused) ? `"${defused.replace(/"/g, '""')}"` : defused;
}
