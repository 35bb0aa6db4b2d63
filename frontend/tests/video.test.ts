import { describe, expect, it } from "vitest";
import type { TrackResult, VideoResponse } from "@/lib/types";
import { contrastRatio, VERDICT_STYLES } from "@/lib/verdict";
import config from "@/tailwind.config";
import {
  boxesAt,
  CHART_COLOURS,
  CHART_FRAME,
  chartScale,
  formatSeconds,
  keySeekTarget,
  nearestSample,
  sampleTimes,
  timeTicks,
  trackDash,
  trackLines,
  trackRows,
} from "@/lib/video";

const box = (x: number) => ({ x, y: 10, width: 50, height: 50, score: 0.9 });

function track(id: number, verdict: TrackResult["verdict"], samples: [number, number][], mean: number): TrackResult {
  return {
    track_id: id,
    frames_seen: samples.length,
    first_s: samples[0][0] * 0.5,
    last_s: samples[samples.length - 1][0] * 0.5,
    fake_probability: mean,
    fraction_over_threshold: samples.filter(([, p]) => p >= 0.5).length / samples.length,
    verdict,
    confidence: Math.max(mean, 1 - mean),
    faces: samples.map(([sample, p]) => ({ sample, time_s: sample * 0.5, box: box(sample * 10), fake_probability: p })),
  };
}

// Two people: track 0 in every sample, track 1 (the suspicious one) missing from sample 2.
const RESPONSE: Pick<VideoResponse, "series" | "tracks" | "most_suspicious_track"> = {
  tracks: [
    track(0, "authentic", [[0, 0.1], [1, 0.2], [2, 0.1], [3, 0.2]], 0.15),
    track(1, "synthetic", [[0, 0.9], [1, 0.8], [3, 0.95]], 0.883),
  ],
  series: [
    { time_s: 0, fake_probability: { "0": 0.1, "1": 0.9 } },
    { time_s: 0.5, fake_probability: { "0": 0.2, "1": 0.8 } },
    { time_s: 1, fake_probability: { "0": 0.1 } },
    { time_s: 1.5, fake_probability: { "0": 0.2, "1": 0.95 } },
  ],
  most_suspicious_track: 1,
};

describe("nearestSample", () => {
  const times = [0, 0.5, 1, 1.5];

  it("finds the sampled frame nearest the playback time", () => {
    expect(nearestSample(times, 0)).toBe(0);
    expect(nearestSample(times, 0.2)).toBe(0);
    expect(nearestSample(times, 0.3)).toBe(1);
    expect(nearestSample(times, 1.4)).toBe(3);
  });

  it("keeps the earlier sample on a tie, clamps past either end, and copes with no samples", () => {
    expect(nearestSample(times, 0.75)).toBe(1);
    expect(nearestSample(times, -3)).toBe(0);
    expect(nearestSample(times, 99)).toBe(3);
    expect(nearestSample(times, Number.NaN)).toBe(0);
    expect(nearestSample([], 1)).toBe(-1);
    expect(nearestSample([2], 0)).toBe(0);
  });

  it("agrees with a linear scan on uneven samples", () => {
    const uneven = [0, 0.13, 0.9, 1.01, 2.5, 7];
    for (let time = -1; time < 8; time += 0.07) {
      const distances = uneven.map((sample) => Math.abs(sample - time));
      expect(nearestSample(uneven, time)).toBe(distances.indexOf(Math.min(...distances)));
    }
  });
});

describe("keySeekTarget", () => {
  const times = [0, 0.5, 1, 1.5];

  it("steps one sampled frame with the arrow keys and jumps with Home / End", () => {
    expect(keySeekTarget(times, 0.5, "ArrowRight")).toBe(1);
    expect(keySeekTarget(times, 0.6, "ArrowLeft")).toBe(0);
    expect(keySeekTarget(times, 0.5, "ArrowUp")).toBe(1);
    expect(keySeekTarget(times, 1, "Home")).toBe(0);
    expect(keySeekTarget(times, 0, "End")).toBe(1.5);
  });

  it("stays within the clip and ignores other keys", () => {
    expect(keySeekTarget(times, 1.5, "ArrowRight")).toBe(1.5);
    expect(keySeekTarget(times, 0, "ArrowLeft")).toBe(0);
    expect(keySeekTarget(times, 0, "Enter")).toBeNull();
    expect(keySeekTarget([], 0, "ArrowRight")).toBeNull();
  });
});

describe("boxesAt", () => {
  it("gives every track's box in that sample, coloured by the track's verdict", () => {
    expect(boxesAt(RESPONSE.tracks, 1)).toEqual([
      { trackId: 0, box: box(10), verdict: "authentic", fakeProbability: 0.2 },
      { trackId: 1, box: box(10), verdict: "synthetic", fakeProbability: 0.8 },
    ]);
    expect(boxesAt(RESPONSE.tracks, 2).map((overlay) => overlay.trackId)).toEqual([0]);
    expect(boxesAt(RESPONSE.tracks, -1)).toEqual([]);
  });

  it("draws nothing for whole frames judged without a face", () => {
    const whole = track(0, "borderline", [[0, 0.5]], 0.5);
    whole.faces[0].box = null;
    expect(boxesAt([whole], 0)).toEqual([]);
  });
});

describe("trackRows", () => {
  it("puts the most suspicious track first and maps the API's fields", () => {
    const rows = trackRows(RESPONSE);
    expect(rows.map((row) => row.trackId)).toEqual([1, 0]);
    expect(rows[0]).toMatchObject({ verdict: "synthetic", framesSeen: 3, firstS: 0, lastS: 1.5, mostSuspicious: true });
    expect(rows[0].fractionOverThreshold).toBe(1);
    expect(rows[1].mostSuspicious).toBe(false);
  });
});

describe("chartScale", () => {
  const scale = chartScale(10);
  const { left, right, top, bottom, width, height } = CHART_FRAME;

  it("maps time to x and probability to y inside the frame, 0 at the bottom", () => {
    expect(scale.x(0)).toBe(left);
    expect(scale.x(10)).toBe(width - right);
    expect(scale.x(5)).toBe((left + width - right) / 2);
    expect(scale.y(0)).toBe(height - bottom);
    expect(scale.y(1)).toBe(top);
    expect(scale.y(2)).toBe(top);
  });

  it("turns a click position back into a time within the clip", () => {
    expect(scale.timeAt(scale.x(3.7))).toBeCloseTo(3.7, 9);
    expect(scale.timeAt(0)).toBe(0);
    expect(scale.timeAt(width)).toBe(10);
  });

  it("still has an axis for a clip without a duration", () => {
    expect(chartScale(0).duration).toBe(1);
    expect(Number.isFinite(chartScale(Number.NaN).x(0.5))).toBe(true);
  });
});

describe("trackLines", () => {
  it("draws one line per track and starts a new sub-path where a track was not seen", () => {
    const scale = chartScale(1.5);
    const [steady, gappy] = trackLines(RESPONSE, scale);
    expect(steady.path.match(/M/g)).toHaveLength(1);
    expect(steady.path.match(/L/g)).toHaveLength(3);
    expect(gappy.path.match(/M/g)).toHaveLength(2);
    expect(gappy.path.startsWith(`M${scale.x(0)} ${Math.round(scale.y(0.9) * 100) / 100}`)).toBe(true);
    expect(gappy.points.map((point) => point.sample)).toEqual([0, 1, 3]);
    expect(gappy.verdict).toBe("synthetic");
  });
});

describe("timeTicks", () => {
  it("chooses round steps that span the clip", () => {
    expect(timeTicks(10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(timeTicks(3)).toEqual([0, 0.5, 1, 1.5, 2, 2.5, 3]);
    expect(timeTicks(120)).toEqual([0, 20, 40, 60, 80, 100, 120]);
    expect(timeTicks(0)).toEqual([0]);
  });
});

describe("formatting", () => {
  it("formats seconds and gives tracks distinct dashes", () => {
    expect(formatSeconds(9.5)).toBe("9.5 s");
    expect(formatSeconds(-1)).toBe("0.0 s");
    expect(new Set([0, 1, 2, 3, 4].map(trackDash)).size).toBe(5);
    expect(sampleTimes(RESPONSE)).toEqual([0, 0.5, 1, 1.5]);
  });
});

describe("chart colours (WCAG AA)", () => {
  it("axis and threshold labels, and the borderline label, pass 4.5:1 on the chart's surfaces", () => {
    const ink = (config.theme?.extend?.colors as Record<string, Record<string, string>>).ink;
    for (const surface of [ink.sunken, ink.raised, ink.DEFAULT]) {
      for (const text of [CHART_COLOURS.axisText, CHART_COLOURS.thresholdText, VERDICT_STYLES.borderline.colour]) {
        expect(contrastRatio(text, surface), `${text} on ${surface}`).toBeGreaterThanOrEqual(4.5);
      }
    }
  });
});
