/** How verdicts look and read. The verdict itself always comes from the API (the model file's threshold and
 * band); this module only draws and words it. */

import type { Stability, Verdict } from "./types";

export interface VerdictStyle {
  label: string;
  /** Solid colour for boxes, bars and badges; each passes WCAG AA (>= 4.5:1) against the page background and
   * with the page background as text colour on it (see tests/verdict.test.ts). */
  colour: string;
  meaning: string;
}

export const PAGE_BACKGROUND = "#0b0f14";

export const VERDICT_STYLES: Record<Verdict, VerdictStyle> = {
  authentic: { label: "Authentic", colour: "#34d399", meaning: "no sign of synthesis or manipulation found" },
  borderline: { label: "Borderline", colour: "#fbbf24", meaning: "the model is not sure either way" },
  synthetic: { label: "Synthetic", colour: "#fb7185", meaning: "likely generated or manipulated" },
  uncertain: {
    label: "Uncertain",
    colour: "#a78bfa",
    meaning: "the score does not hold when the face is scored again, slightly altered",
  },
};

export function verdictStyle(verdict: Verdict): VerdictStyle {
  return VERDICT_STYLES[verdict];
}

export interface BandSegment {
  verdict: Verdict;
  from: number;
  to: number;
}

/** The probability axis split the way the model decides: below the band authentic, inside it borderline, above
 * it synthetic (the threshold lies inside the band, so it only matters for the seed's Real/Fake answer). */
export function bandSegments(band: readonly [number, number]): BandSegment[] {
  const [low, high] = [clampUnit(band[0]), clampUnit(band[1])];
  return [
    { verdict: "authentic" as const, from: 0, to: low },
    { verdict: "borderline" as const, from: low, to: high },
    { verdict: "synthetic" as const, from: high, to: 1 },
  ].filter((segment) => segment.to > segment.from);
}

export function clampUnit(value: number): number {
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}

export function percent(probability: number, digits = 0): string {
  return `${(clampUnit(probability) * 100).toFixed(digits)}%`;
}

/** One sentence an analyst can read aloud: the probability, where it falls, and what that means. */
export function explainVerdict(
  verdict: Verdict,
  fakeProbability: number,
  band: readonly [number, number],
): string {
  const [low, high] = band;
  if (verdict === "uncertain") {
    return `Fake probability ${percent(fakeProbability, 1)}, but ${VERDICT_STYLES[verdict].meaning}: no verdict.`;
  }
  const where =
    verdict === "borderline"
      ? `inside the borderline band (${percent(low)}–${percent(high)})`
      : verdict === "synthetic"
        ? `above the borderline band (${percent(high)})`
        : `below the borderline band (${percent(low)})`;
  return `Fake probability ${percent(fakeProbability, 1)} is ${where}: ${VERDICT_STYLES[verdict].meaning}.`;
}

/** The degraded copies the service may score a face on (`engine.VIEWS`), in words. */
const VIEW_WORDS: Record<string, string> = {
  shift_4px: "a 4 px shift",
  jpeg_q75: "JPEG q75 re-compression",
  "resize_0.75": "resizing to 0.75×",
  combined: "a shift, resizing and re-compression at once",
};

/** The stability check's outcome in a few words: how far the score moved (in percentage points) under the
 * degraded copies the service scored — named from the response, a view this dashboard does not know by its
 * name — and whether the verdict held. */
export function stabilityText(stability: Stability): string {
  const views = Object.keys(stability.probabilities).map((view) => VIEW_WORDS[view] ?? view);
  const under = views.length > 0 ? views.join(", ") : "its degraded copies";
  const spread = `moves ${(clampUnit(stability.spread) * 100).toFixed(1)} pts under ${under}`;
  if (stability.straddles_threshold) return `${spread}: crosses the threshold`;
  return stability.stable ? `${spread}: holds` : `${spread}: more than the calibrated margin`;
}

export interface AxisTick {
  at: number;
  text: string;
}

/** The probability axis's labels: 0, the band's edges and 100, leaving out an end label that a band edge would
 * print over (a band ending at 96 % sits where "100" is written). `minGap` is the share of the axis two labels
 * need between their anchors. */
export function axisTicks(band: readonly [number, number], minGap = 0.1): AxisTick[] {
  const edges = [clampUnit(band[0]), clampUnit(band[1])].map((at) => ({ at, text: percent(at) }));
  const ends = [
    { at: 0, text: "0" },
    { at: 1, text: "100" },
  ].filter((end) => edges.every((edge) => Math.abs(edge.at - end.at) >= minGap));
  return [...ends, ...edges].sort((a, b) => a.at - b.at);
}

/** Relative luminance and contrast ratio as WCAG 2.x defines them. */
export function contrastRatio(foreground: string, background: string): number {
  const [a, b] = [relativeLuminance(foreground), relativeLuminance(background)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}

function relativeLuminance(hex: string): number {
  const value = hex.replace("#", "");
  const channels = [0, 2, 4].map((start) => parseInt(value.slice(start, start + 2), 16) / 255);
  const [r, g, b] = channels.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
