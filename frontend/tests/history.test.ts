import { describe, expect, it } from "vitest";
import {
  clearHistory,
  csvCell,
  CSV_COLUMNS,
  entryFrom,
  HISTORY_KEY,
  type HistoryEntry,
  type KeyValueStore,
  loadHistory,
  MAX_ENTRIES,
  prepend,
  saveHistory,
  toCsv,
  toJson,
} from "@/lib/history";
import type { ImageResult, PredictResponse } from "@/lib/types";

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
    },
    { box: { x: 160, y: 20, width: 40, height: 40, score: 0.7 }, fake_probability: 0.1, verdict: "authentic", confidence: 0.9 },
  ],
  timings: { decode_ms: 2, faces_ms: 7, model_ms: 120, total_ms: 130 },
};

const RESPONSE: PredictResponse = { model_version: "0.2.0", threshold: 0.5191, borderline_band: [0.3, 0.7], results: [RESULT] };

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
    expect(made.faces[0]).toEqual({ box: RESULT.faces[0].box, fake_probability: 0.958, verdict: "synthetic", confidence: 0.958 });
    expect(JSON.stringify(made)).not.toContain("iVBORw0KGgo");
    expect(made).toMatchObject({ model_version: "0.2.0", threshold: 0.5191, total_ms: 130, analysed_at: "2026-11-25T12:00:00.000Z" });
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

describe("exports", () => {
  it("CSV has one row per face with the columns in order", () => {
    const lines = toCsv([entry("a")]).split("\r\n");
    expect(lines[0]).toBe(CSV_COLUMNS.join(","));
    expect(lines[1]).toBe(
      "2026-11-25T12:00:00.000Z,face.jpg,synthetic,0.9580,true,1,synthetic,0.9580,0.9580,50,60,100,120,0.2.0,0.5191",
    );
    expect(lines[2]).toBe(
      "2026-11-25T12:00:00.000Z,face.jpg,synthetic,0.9580,true,2,authentic,0.1000,0.9000,160,20,40,40,0.2.0,0.5191",
    );
    expect(lines).toHaveLength(4); // header, two faces, trailing newline
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
