import { describe, expect, it } from "vitest";
import { axisTicks, bandSegments, contrastRatio, explainVerdict, percent, PAGE_BACKGROUND, stabilityText, VERDICT_STYLES } from "@/lib/verdict";
import config from "@/tailwind.config";

describe("bandSegments", () => {
  it("splits the probability axis into authentic, borderline and synthetic zones at the band", () => {
    expect(bandSegments([0.3, 0.7])).toEqual([
      { verdict: "authentic", from: 0, to: 0.3 },
      { verdict: "borderline", from: 0.3, to: 0.7 },
      { verdict: "synthetic", from: 0.7, to: 1 },
    ]);
  });

  it("drops empty zones and clamps a band outside [0, 1]", () => {
    expect(bandSegments([0, 1.2])).toEqual([{ verdict: "borderline", from: 0, to: 1 }]);
    expect(bandSegments([0.5, 0.5]).map((segment) => segment.verdict)).toEqual(["authentic", "synthetic"]);
  });
});

describe("explainVerdict", () => {
  it("says where the probability falls and what that means", () => {
    expect(explainVerdict("synthetic", 0.958, [0.3, 0.7])).toBe(
      "Fake probability 95.8% is above the borderline band (70%): likely generated or manipulated.",
    );
    expect(explainVerdict("borderline", 0.5, [0.3, 0.7])).toContain("inside the borderline band (30%–70%)");
    expect(explainVerdict("authentic", 0.01, [0.3, 0.7])).toContain("below the borderline band (30%)");
    expect(explainVerdict("uncertain", 0.81, [0.3, 0.7])).toBe(
      "Fake probability 81.0%, but the score does not hold when the face is scored again, slightly altered: no verdict.",
    );
    expect(VERDICT_STYLES.uncertain.label).toBe("Uncertain");
  });
});

describe("stabilityText", () => {
  const probabilities = { jpeg_q75: 0.8, "resize_0.75": 0.9, shift_4px: 0.85 };
  it("says how far the score moved and whether the verdict held", () => {
    expect(stabilityText({ probabilities, spread: 0.031, straddles_threshold: false, stable: true })).toBe(
      "moves 3.1 pts under JPEG q75 re-compression, resizing to 0.75×, a 4 px shift: holds",
    );
    const shiftOnly = { probabilities: { shift_4px: 0.2 }, spread: 0.001, straddles_threshold: false, stable: true };
    expect(stabilityText(shiftOnly)).toBe("moves 0.1 pts under a 4 px shift: holds");
    expect(stabilityText({ ...shiftOnly, probabilities: { blur_1: 0.2 } })).toMatch(/under blur_1: holds$/);
    expect(stabilityText({ probabilities, spread: 0.3, straddles_threshold: true, stable: false })).toMatch(/30\.0 pts.*crosses the threshold$/);
    expect(stabilityText({ probabilities, spread: 0.2, straddles_threshold: false, stable: false })).toMatch(/more than the calibrated margin$/);
  });
});

describe("axisTicks", () => {
  it("labels 0, the band's edges and 100, in order", () => {
    expect(axisTicks([0.3, 0.7]).map((tick) => tick.text)).toEqual(["0", "30%", "70%", "100"]);
  });
  it("leaves out an end label a band edge would print over", () => {
    expect(axisTicks([0.3, 0.96]).map((tick) => tick.text)).toEqual(["0", "30%", "96%"]);
    expect(axisTicks([0.05, 0.7]).map((tick) => tick.text)).toEqual(["5%", "70%", "100"]);
  });
});

describe("percent", () => {
  it("formats probabilities and clamps nonsense", () => {
    expect(percent(0.5191, 1)).toBe("51.9%");
    expect(percent(1.7)).toBe("100%");
    expect(percent(Number.NaN)).toBe("0%");
  });
});

describe("contrast (WCAG AA on the dark theme)", () => {
  it("computes the WCAG ratio", () => {
    expect(contrastRatio("#000000", "#ffffff")).toBeCloseTo(21, 5);
    expect(contrastRatio("#777777", "#ffffff")).toBeCloseTo(4.48, 2);
  });

  it.each(Object.entries(VERDICT_STYLES))("%s: colour on the page and page-coloured text on the colour pass 4.5:1", (_, style) => {
    expect(contrastRatio(style.colour, PAGE_BACKGROUND)).toBeGreaterThanOrEqual(4.5);
  });

  it("every text colour passes 4.5:1 on every surface", () => {
    const colours = config.theme?.extend?.colors as Record<string, Record<string, string>>;
    const surfaces = Object.values(colours.ink).filter((colour) => colour !== colours.ink.line);
    for (const text of [...Object.values(colours.text), colours.accent.DEFAULT]) {
      for (const surface of surfaces) expect(contrastRatio(text, surface), `${text} on ${surface}`).toBeGreaterThanOrEqual(4.5);
    }
  });
});
