/** The video view's logic: which sampled frame the player is showing, which boxes to draw on it, and how the
 * probability-over-time chart is scaled and drawn. The verdicts themselves always come from the API. */

import type { Box, TrackResult, Verdict, VideoResponse } from "./types";

/** What the file picker offers; anything else still goes to the API, which says what it cannot read. */
export const VIDEO_ACCEPT = "video/mp4,video/webm,video/quicktime,video/x-msvideo,.mp4,.m4v,.mov,.webm,.mkv,.avi";

/** Index of the sampled frame nearest `time` (seconds); `times` ascend, as `series` does. -1 when there are none.
 * On a tie the earlier sample wins, so a frame is never shown with boxes from the future. */
export function nearestSample(times: readonly number[], time: number): number {
  if (times.length === 0) return -1;
  if (!Number.isFinite(time)) return 0;
  let low = 0;
  let high = times.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (times[middle] < time) low = middle + 1;
    else high = middle;
  }
  // `low` is the first sample at or after `time`; its predecessor may be nearer.
  if (low > 0 && time - times[low - 1] <= times[low] - time) return low - 1;
  return low;
}

export function sampleTimes(response: Pick<VideoResponse, "series">): number[] {
  return response.series.map((point) => point.time_s);
}

/** Where a key pressed on the chart moves the video: one sampled frame back or on, or to the first or last; null
 * for keys the chart does not handle. */
export function keySeekTarget(times: readonly number[], time: number, key: string): number | null {
  if (times.length === 0) return null;
  const current = nearestSample(times, time);
  const moves: Record<string, number> = {
    ArrowRight: current + 1,
    ArrowUp: current + 1,
    ArrowLeft: current - 1,
    ArrowDown: current - 1,
    Home: 0,
    End: times.length - 1,
  };
  if (!(key in moves)) return null;
  return times[Math.min(times.length - 1, Math.max(0, moves[key]))];
}

export interface OverlayBox {
  trackId: number;
  box: Box;
  /** The track's verdict (its mean over the clip), so a person keeps one colour as the video plays. */
  verdict: Verdict;
  /** This frame's own probability. */
  fakeProbability: number;
}

/** The faces to draw over sampled frame `sample`: one per track seen in it (whole-frame judgements have no box). */
export function boxesAt(tracks: readonly TrackResult[], sample: number): OverlayBox[] {
  const boxes: OverlayBox[] = [];
  for (const track of tracks) {
    const face = track.faces.find((candidate) => candidate.sample === sample);
    if (face?.box) {
      boxes.push({ trackId: track.track_id, box: face.box, verdict: track.verdict, fakeProbability: face.fake_probability });
    }
  }
  return boxes;
}

export interface TrackRow {
  trackId: number;
  verdict: Verdict;
  fakeProbability: number;
  fractionOverThreshold: number;
  framesSeen: number;
  firstS: number;
  lastS: number;
  mostSuspicious: boolean;
}

/** The per-track table: the video's verdict (most suspicious track) first, then by track id. */
export function trackRows(response: Pick<VideoResponse, "tracks" | "most_suspicious_track">): TrackRow[] {
  return response.tracks
    .map((track) => ({
      trackId: track.track_id,
      verdict: track.verdict,
      fakeProbability: track.fake_probability,
      fractionOverThreshold: track.fraction_over_threshold,
      framesSeen: track.frames_seen,
      firstS: track.first_s,
      lastS: track.last_s,
      mostSuspicious: track.track_id === response.most_suspicious_track,
    }))
    .sort((a, b) => Number(b.mostSuspicious) - Number(a.mostSuspicious) || a.trackId - b.trackId);
}

export function formatSeconds(seconds: number): string {
  return `${(Number.isFinite(seconds) ? Math.max(0, seconds) : 0).toFixed(1)} s`;
}

/** The chart's drawing area inside an SVG viewBox of `width` × `height`. */
export interface ChartFrame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** The chart's own colours, from the dashboard palette (tailwind.config.ts); the text ones pass WCAG AA on the
 * chart's surfaces (tests/video.test.ts). */
export const CHART_COLOURS = {
  axisText: "#8594a8", // text-faint
  thresholdText: "#e6edf3", // text
  grid: "#243041", // ink-line
  playhead: "#7cc4ff", // accent
  pointFill: "#0b0f14", // ink
} as const;

export const CHART_FRAME: ChartFrame = { width: 1000, height: 250, left: 48, right: 16, top: 14, bottom: 30 };

export interface ChartScale {
  /** Seconds → x in viewBox units. */
  x: (seconds: number) => number;
  /** Probability → y in viewBox units (0 at the bottom). */
  y: (probability: number) => number;
  /** x in viewBox units → seconds, clamped to the clip: where a click on the chart seeks to. */
  timeAt: (x: number) => number;
  duration: number;
}

export function chartScale(duration: number, frame: ChartFrame = CHART_FRAME): ChartScale {
  // A clip too short to have a duration still gets a usable axis.
  const span = Number.isFinite(duration) && duration > 0 ? duration : 1;
  const plotWidth = frame.width - frame.left - frame.right;
  const plotHeight = frame.height - frame.top - frame.bottom;
  const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));
  return {
    x: (seconds) => frame.left + (clamp(seconds, 0, span) / span) * plotWidth,
    y: (probability) => frame.top + (1 - clamp(probability, 0, 1)) * plotHeight,
    timeAt: (x) => (clamp(x - frame.left, 0, plotWidth) / plotWidth) * span,
    duration: span,
  };
}

export interface TrackLine {
  trackId: number;
  verdict: Verdict;
  /** SVG path data; a new sub-path (`M`) wherever the track was missing from a sample, so a gap is not bridged. */
  path: string;
  /** The samples as points, for markers (a track seen once has no line to draw). */
  points: { sample: number; x: number; y: number; probability: number }[];
}

/** One line per track from `series`, in viewBox units. */
export function trackLines(response: Pick<VideoResponse, "series" | "tracks">, scale: ChartScale): TrackLine[] {
  return response.tracks.map((track) => {
    const key = String(track.track_id);
    const points: TrackLine["points"] = [];
    let path = "";
    let previous = -2;
    response.series.forEach((point, sample) => {
      const probability = point.fake_probability[key];
      if (probability === undefined) return;
      const [x, y] = [round(scale.x(point.time_s)), round(scale.y(probability))];
      path += `${path ? " " : ""}${sample === previous + 1 ? "L" : "M"}${x} ${y}`;
      points.push({ sample, x, y, probability });
      previous = sample;
    });
    return { trackId: track.track_id, verdict: track.verdict, path, points };
  });
}

/** Dash patterns that tell tracks apart when they share a verdict colour (never colour alone). */
const DASHES = ["", "8 4", "2 3", "10 3 2 3", "4 4"];

export function trackDash(index: number): string {
  return DASHES[index % DASHES.length];
}

/** Round time ticks (0.5, 1, 2, 5, 10… s apart) for a clip of `duration` seconds, about `target` of them. */
export function timeTicks(duration: number, target = 6): number[] {
  if (!Number.isFinite(duration) || duration <= 0) return [0];
  const raw = duration / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= raw) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let tick = 0; tick <= duration + step * 1e-9; tick += step) ticks.push(round(tick));
  return ticks;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
