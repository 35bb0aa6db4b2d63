import { describe, expect, it } from "vitest";
import {
  clearHistory,
  csvCell,
  CSV_COLUMNS,
  entryFrom,
  entrySummary,
  evidenceText,
  HISTORY_KEY,
  type HistoryEntry,
  type KeyValueStore,
  loadHistory,
  MAX_ENTRIES,
  prepend,
  saveHistory,
  thumbnailFrame,
  toCsv,
  toJson,
  videoEntryFrom,
} from "@/lib/history";
import type { ImageResult, PredictResponse, TrackResult, VideoResponse } from "@/lib/types";

const RESULT: ImageResult = {
  filename: "face.jpg",
  width: 256,
  height: 256,
  face_detected: true,
  verdict: "synthetic",
  fake_probability: 0.958,
  confidence: 0.958,
  faces: [
    {
      box: { x: 50, y: 60, width: 100, height: 120, score: 0.95 },
      fake_probability: 0.958,
      verdict: "synthetic",
      confidence: 0.958,
      heatmap_png: "iVBORw0KGgo=",
      stability: {
        probabilities: { jpeg_q75: 0.94, "resize_0.75": 0.971, shift_4px: 0.94 },
        spread: 0.031,
        straddles_threshold: false,
        stable: true,
      },
    },
    { box: { x: 160, y: 20, width: 40, height: 40, score: 0.7 }, fake_probability: 0.1, verdict: "authentic", confidence: 0.9 },
  ],
  evidence: {
    conclusion: "synthetic",
    strength: "moderate",
    summary: "The pixel model judges the most suspicious face synthetic (p=0.96).",
    lines: [
      { source: "pixel_model", points_to: "synthetic", strength: "moderate", statement: "The pixel model judges the most suspicious face synthetic (p=0.96)." },
      { source: "content_credentials", points_to: "inconclusive", strength: "none", statement: "No Content Credentials." },
      { source: "metadata", points_to: "inconclusive", strength: "none", statement: "No metadata about the image's origin." },
    ],
    content_credentials: { status: "absent", claim_generator: null, signer: null, signed_at: null, digital_source_types: [], actions: [], failures: [], detail: null },
    metadata: { status: "absent", digital_source_type: null, generator_markers: [], software: null, camera_make: null, camera_model: null, captured_at: null, detail: null },
  },
  timings: { provenance_ms: 0, decode_ms: 2, faces_ms: 7, model_ms: 120, total_ms: 130 },
};

const RESPONSE: PredictResponse = { model_version: "0.2.0", threshold: 0.5191, borderline_band: [0.3, 0.7], results: [RESULT] };

function track(track_id: number, verdict: TrackResult["verdict"], faces: [number, number][]): TrackResult {
  const mean = faces.reduce((sum, [, p]) => sum + p, 0) / faces.length;
  return {
    track_id,
    frames_seen: faces.length,
    first_s: faces[0][0] / 2,
    last_s: faces.at(-1)![0] / 2,
    fake_probability: mean,
    fraction_over_threshold: faces.filter(([, p]) => p >= 0.5).length / faces.length,
    verdict,
    confidence: Math.max(mean, 1 - mean),
    faces: faces.map(([sample, p]) => ({ sample, time_s: sample / 2, box: { x: 10 * track_id, y: sample, width: 30, height: 40, score: 0.9 }, fake_probability: p })),
  };
}

const VIDEO: VideoResponse = {
  model_version: "0.4.0",
  threshold: 0.5264,
  borderline_band: [0.3, 0.7],
  filename: "clip.webm",
  video: { container: "webm", codec: "vp9", width: 640, height: 360, duration_s: 4, fps: 25, frames_sampled: 8, sample_fps: 2 },
  face_detected: true,
  verdict: "synthetic",
  fake_probability: 0.85,
  confidence: 0.85,
  most_suspicious_track: 1,
  tracks: [
    track(0, "authentic", [[0, 0.1], [1, 0.2], [2, 0.1]]),
    track(1, "synthetic", [[0, 0.8], [2, 0.95], [3, 0.8]]),
  ],
  series: [],
  timings: { provenance_ms: 0, decode_ms: 40, faces_ms: 300, model_ms: 500, total_ms: 900 },
};

function entry(id: string, thumbnail: string | null = "data:image/jpeg;base64,AAAA"): HistoryEntry {
  return entryFrom(RESPONSE, RESULT, thumbnail, new Date("2026-11-25T12:00:00Z"), id);
}

/** localStorage with a size limit, like a browser's quota. */
class LimitedStore implements KeyValueStore {
  values = new Map<string, string>();
  constructor(private readonly limit = Infinity) {}
  getItem(key: string) {
    return this.values.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    if (value.length > this.limit) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
    this.values.set(key, value);
  }
  removeItem(key: string) {
    this.values.delete(key);
  }
}

describe("entryFrom", () => {
  it("keeps the verdicts and boxes but never the heatmaps", () => {
    const made = entry("a");
    expect(made.faces).toHaveLength(2);
    expect(made.faces[0]).toEqual({
      box: RESULT.faces[0].box,
      fake_probability: 0.958,
      verdict: "synthetic",
      confidence: 0.958,
      stability_spread: 0.031,
    });
    expect(made.faces[1].stability_spread).toBeNull(); // the check was off for it (no stability block)
    expect(JSON.stringify(made)).not.toContain("iVBORw0KGgo");
    expect(made).toMatchObject({ model_version: "0.2.0", threshold: 0.5191, total_ms: 130, analysed_at: "2026-11-25T12:00:00.000Z" });
  });
});

describe("videoEntryFrom", () => {
  it("the thumbnail's frame is where the most suspicious person looks most fake", () => {
    expect(thumbnailFrame(VIDEO)).toEqual({ sample: 2, time_s: 1 });
    expect(thumbnailFrame({ ...VIDEO, tracks: [] })).toBeNull();
  });

  it("keeps one verdict per person, boxed where they are in the thumbnail's frame", () => {
    const made = videoEntryFrom(VIDEO, "data:image/jpeg;base64,AAAA", 2, new Date("2026-11-26T12:00:00Z"), "v");
    expect(made).toMatchObject({ media: "video", filename: "clip.webm", width: 640, height: 360, duration_s: 4, verdict: "synthetic" });
    expect(made.faces.map((face) => [face.track_id, face.verdict, face.box?.y])).toEqual([
      [0, "authentic", 2],
      [1, "synthetic", 2],
    ]);
    // A person not seen in that frame has a verdict but no box.
    expect(videoEntryFrom(VIDEO, null, 3).faces.map((face) => face.box?.y ?? null)).toEqual([null, 3]);
    expect(videoEntryFrom({ ...VIDEO, tracks: [], face_detected: false }, null, null).faces).toEqual([]);
  });

  it("says what was judged in a few words", () => {
    expect(entrySummary(videoEntryFrom(VIDEO, null, 2))).toBe("video 4.0 s · 2 people");
    expect(entrySummary(videoEntryFrom({ ...VIDEO, tracks: [VIDEO.tracks[1]] }, null, 2))).toBe("video 4.0 s · 1 person");
    expect(entrySummary(videoEntryFrom({ ...VIDEO, tracks: [] }, null, null))).toBe("video 4.0 s · no faces");
    expect(entrySummary(entry("a"))).toBe("2 faces");
    expect(entrySummary(entryFrom(RESPONSE, { ...RESULT, face_detected: false, faces: [RESULT.faces[0]] }, null))).toBe("whole image");
  });
});

describe("the history store", () => {
  it("round-trips through storage, newest first", () => {
    const store = new LimitedStore();
    saveHistory(store, prepend(prepend([], [entry("old")]), [entry("new")]));
    expect(loadHistory(store).map((e) => e.id)).toEqual(["new", "old"]);
  });

  it("keeps at most MAX_ENTRIES, dropping the oldest", () => {
    const many = Array.from({ length: MAX_ENTRIES }, (_, i) => entry(`old-${i}`));
    const kept = prepend(many, [entry("newest")]);
    expect(kept).toHaveLength(MAX_ENTRIES);
    expect(kept[0].id).toBe("newest");
    expect(kept.at(-1)?.id).toBe(`old-${MAX_ENTRIES - 2}`);
  });

  it("ignores unreadable or foreign stored values instead of throwing", () => {
    const store = new LimitedStore();
    store.setItem(HISTORY_KEY, "{not json");
    expect(loadHistory(store)).toEqual([]);
    store.setItem(HISTORY_KEY, JSON.stringify([{ id: 1 }, entry("good"), null, { ...entry("bad"), verdict: "fake" }]));
    expect(loadHistory(store).map((e) => e.id)).toEqual(["good"]);
    store.setItem(HISTORY_KEY, JSON.stringify([{ ...entry("odd"), media: "audio" }]));
    expect(loadHistory(store)).toEqual([]);
  });

  it("reads entries stored before videos were kept as images", () => {
    const store = new LimitedStore();
    const { media: _media, duration_s: _duration, ...older } = entry("older");
    store.setItem(HISTORY_KEY, JSON.stringify([older]));
    expect(loadHistory(store)).toEqual([entry("older")]);
  });

  it("when the quota is reached, drops the oldest thumbnails first, then the oldest entries", () => {
    const thumbnail = `data:image/jpeg;base64,${"A".repeat(4000)}`;
    const entries = ["e0", "e1", "e2", "e3"].map((id) => entry(id, thumbnail));
    const withoutThumbnails = JSON.stringify(entries.map((e) => ({ ...e, thumbnail: null }))).length;
    const store = new LimitedStore(withoutThumbnails + 2 * (thumbnail.length + 10));
    const stored = saveHistory(store, entries);
    expect(stored.map((e) => e.id)).toEqual(["e0", "e1", "e2", "e3"]);
    expect(stored.map((e) => e.thumbnail !== null)).toEqual([true, true, false, false]);
    expect(loadHistory(store)).toEqual(stored);

    const tiny = new LimitedStore(JSON.stringify([{ ...entries[0], thumbnail: null }]).length + 5);
    expect(saveHistory(tiny, entries).map((e) => [e.id, e.thumbnail])).toEqual([["e0", null]]);
  });

  it("rethrows storage errors that are not about the quota", () => {
    const broken: KeyValueStore = {
      getItem: () => null,
      removeItem: () => undefined,
      setItem: () => {
        throw new Error("SecurityError: storage disabled");
      },
    };
    expect(() => saveHistory(broken, [entry("a")])).toThrow("storage disabled");
  });

  it("clears", () => {
    const store = new LimitedStore();
    saveHistory(store, [entry("a")]);
    clearHistory(store);
    expect(loadHistory(store)).toEqual([]);
  });
});

const EVIDENCE_CELLS = "synthetic,moderate,absent,absent,The pixel model judges the most suspicious face synthetic (p=0.96).";

/** The RESULT as a C2PA-signed image whose credentials declare it generated and whose metadata is unreadable. */
function signedEntry(id: string): HistoryEntry {
  const evidence = {
    ...RESULT.evidence,
    conclusion: "synthetic" as const,
    strength: "decisive" as const,
    summary: "AI-generated, say Content Credentials signed by Acme, which this service trusts.",
    content_credentials: { ...RESULT.evidence.content_credentials, status: "valid" as const, signer: "Acme, signer" },
    metadata: { ...RESULT.evidence.metadata, status: "unreadable" as const, detail: "XMP packet too large" },
  };
  return entryFrom(RESPONSE, { ...RESULT, evidence }, null, new Date("2026-11-27T12:00:00Z"), id);
}

describe("the evidence in the history", () => {
  it("keeps the combined reading and each line's status, not the lines' details", () => {
    const made = signedEntry("s");
    expect(made.evidence).toEqual({
      conclusion: "synthetic",
      strength: "decisive",
      summary: "AI-generated, say Content Credentials signed by Acme, which this service trusts.",
      content_credentials: "valid",
      metadata: "unreadable",
    });
    expect(JSON.stringify(made)).not.toContain("XMP packet too large");
    expect(evidenceText(made.evidence!)).toBe("evidence: synthetic (decisive) · credentials valid · metadata unreadable");
    expect(evidenceText({ ...made.evidence!, conclusion: "inconclusive", strength: "none" })).toBe(
      "evidence: inconclusive · credentials valid · metadata unreadable",
    );
  });

  it("videos have none", () => {
    expect(videoEntryFrom(VIDEO, null, 2).evidence).toBeNull();
  });

  it("round-trips through storage and the JSON export", () => {
    const store = new LimitedStore();
    saveHistory(store, [signedEntry("s")]);
    expect(loadHistory(store)).toEqual([signedEntry("s")]);
    const [exported] = JSON.parse(toJson([signedEntry("s")]));
    expect(exported.evidence.content_credentials).toBe("valid");
    expect(exported.faces[0].stability_spread).toBe(0.031);
  });

  it("entries stored before evidence was kept still load, without evidence, and export empty evidence columns", () => {
    const store = new LimitedStore();
    const { evidence: _evidence, ...older } = entry("older");
    const olderFaces = older.faces.map(({ stability_spread: _spread, ...face }) => face);
    store.setItem(HISTORY_KEY, JSON.stringify([{ ...older, faces: olderFaces }]));

    const [loaded] = loadHistory(store);

    expect(loaded.id).toBe("older");
    expect(loaded.evidence).toBeNull();
    expect(loaded.faces[0].stability_spread).toBeUndefined();
    expect(toCsv([loaded]).split("\r\n")[1]).toMatch(/,image,,,,,,,,$/);
  });

  it("an evidence block or spread that does not read is dropped, the entry kept", () => {
    const store = new LimitedStore();
    const good = signedEntry("odd");
    const odd = {
      ...good,
      evidence: { ...good.evidence, content_credentials: "forged" },
      faces: [{ ...good.faces[0], stability_spread: "wide" }],
    };
    store.setItem(HISTORY_KEY, JSON.stringify([odd, { ...entry("none"), evidence: "yes" }]));

    const loaded = loadHistory(store);

    expect(loaded.map((e) => [e.id, e.evidence])).toEqual([
      ["odd", null],
      ["none", null],
    ]);
    expect(loaded[0].faces[0].stability_spread).toBeNull();
    expect(() => toCsv(loaded)).not.toThrow();
  });

  it("CSV carries the evidence on every face's row, quoting a summary with commas", () => {
    const lines = toCsv([signedEntry("s")]).split("\r\n");
    const tail = ',valid,unreadable,"AI-generated, say Content Credentials signed by Acme, which this service trusts."';
    expect(lines[1].endsWith(`,0.0310,synthetic,decisive${tail}`)).toBe(true);
    expect(lines[2].endsWith(`,,synthetic,decisive${tail}`)).toBe(true);
    expect(CSV_COLUMNS.slice(-6)).toEqual([
      "face_stability_spread",
      "evidence_conclusion",
      "evidence_strength",
      "content_credentials",
      "metadata",
      "evidence_summary",
    ]);
  });
});

describe("exports", () => {
  it("CSV has one row per face with the columns in order", () => {
    const lines = toCsv([entry("a")]).split("\r\n");
    expect(lines[0]).toBe(CSV_COLUMNS.join(","));
    expect(lines[1]).toBe(
      "2026-11-25T12:00:00.000Z,face.jpg,synthetic,0.9580,true,1,synthetic,0.9580,0.9580,50,60,100,120,0.2.0,0.5191,image,,,0.0310," + EVIDENCE_CELLS,
    );
    expect(lines[2]).toBe(
      "2026-11-25T12:00:00.000Z,face.jpg,synthetic,0.9580,true,2,authentic,0.1000,0.9000,160,20,40,40,0.2.0,0.5191,image,,,," + EVIDENCE_CELLS,
    );
    expect(lines).toHaveLength(4); // header, two faces, trailing newline
  });

  it("CSV has one row per person in a video, with the clip's length and the track", () => {
    const lines = toCsv([videoEntryFrom(VIDEO, null, 3, new Date("2026-11-26T12:00:00Z"))]).split("\r\n");
    expect(lines.slice(1, 3)).toEqual([
      "2026-11-26T12:00:00.000Z,clip.webm,synthetic,0.8500,true,1,authentic,0.1333,0.8667,,,,,0.4.0,0.5264,video,4.00,0,,,,,,",
      "2026-11-26T12:00:00.000Z,clip.webm,synthetic,0.8500,true,2,synthetic,0.8500,0.8500,10,3,30,40,0.4.0,0.5264,video,4.00,1,,,,,,",
    ]);
  });

  it("CSV leaves box columns empty when the whole image was judged", () => {
    const whole = entryFrom(RESPONSE, { ...RESULT, face_detected: false, faces: [{ ...RESULT.faces[0], box: null }] }, null);
    expect(toCsv([whole]).split("\r\n")[1]).toContain(",false,1,synthetic,0.9580,0.9580,,,,,0.2.0");
  });

  it("CSV quotes separators and defuses spreadsheet formulas in file names", () => {
    expect(csvCell('my "best", photo.jpg')).toBe('"my ""best"", photo.jpg"');
    expect(csvCell("=HYPERLINK(1).jpg")).toBe("'=HYPERLINK(1).jpg");
    expect(csvCell("@x.png")).toBe("'@x.png");
    expect(csvCell("-0.5")).toBe("-0.5");
    expect(csvCell("plain.jpg")).toBe("plain.jpg");
  });

  it("JSON export has every field but the thumbnail", () => {
    const [exported] = JSON.parse(toJson([entry("a")]));
    expect(exported.thumbnail).toBeUndefined();
    expect(exported.id).toBe("a");
    expect(exported.faces).toHaveLength(2);
  });
});
