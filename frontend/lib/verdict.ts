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
    meaning: "the score does not hold under mild re-compression, resizing or a small shift",
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

/** The stability check's outcome in a few words: how far the score moved under the mild degradations (in
 * percentage points) and whether the verdict held. */
export function stabilityText(stability: Stability): string {
  const spread = `moves ${(clampUnit(stability.spread) * 100).toFixed(1)} pts under re-compression, resizing, a shift`;
  if (stability.straddles_threshold) return `${spread}: crosses the threshold`;
  return stability.stable ? `${spread}: holds` : `${spread}: more than the calibrated margin`;
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
