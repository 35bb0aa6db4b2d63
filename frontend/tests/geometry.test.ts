import { describe, expect, it } from "vitest";
import { fitWithin, judgedRegion, percentStyle, pyRound } from "@/lib/geometry";

// Expected regions printed by the service's own code:
// FaceBox(x, y, width, height, score).square_crop(image_width, image_height) -> (left, top, right, bottom)
const SERVICE_CROPS: [[number, number, number, number], [number, number], [number, number, number, number]][] = [
  [[50, 60, 100, 120], [256, 256], [16, 36, 184, 204]],
  [[0, 0, 80, 80], [256, 256], [0, 0, 112, 112]],
  [[200, 10, 60, 50], [256, 300], [172, 0, 256, 84]],
  [[10, 10, 300, 200], [320, 240], [40, 0, 280, 240]],
  [[33, 47, 25, 25], [100, 100], [28, 42, 63, 77]],
  [[10, 10, 13, 13], [100, 100], [8, 8, 26, 26]],
  [[11, 12, 13, 13], [100, 100], [8, 10, 26, 28]],
];

describe("judgedRegion", () => {
  it.each(SERVICE_CROPS)("matches the service's square crop for box %j in %j", ([x, y, width, height], [w, h], crop) => {
    const region = judgedRegion({ x, y, width, height, score: 0.9 }, w, h);
    expect([region.left, region.top, region.left + region.width, region.top + region.height]).toEqual(crop);
  });

  it("is the centred square of the whole image when no face was found", () => {
    expect(judgedRegion(null, 300, 200)).toEqual({ left: 50, top: 0, width: 200, height: 200 });
  });
});

describe("pyRound", () => {
  it("rounds halves to the even neighbour like Python", () => {
    expect([0.5, 1.5, 2.5, 7.5, 8.5, 2.4, 2.6].map(pyRound)).toEqual([0, 2, 2, 8, 8, 2, 3]);
  });
});

describe("percentStyle", () => {
  it("places a box in percent of the image and clips it to the image", () => {
    expect(percentStyle({ left: 50, top: 25, width: 100, height: 50 }, 200, 100)).toEqual({
      left: "25%",
      top: "25%",
      width: "50%",
      height: "50%",
    });
    expect(percentStyle({ left: -10, top: 90, width: 30, height: 30 }, 100, 100)).toEqual({
      left: "0%",
      top: "90%",
      width: "20%",
      height: "10%",
    });
  });
});

describe("fitWithin", () => {
  it("shrinks the long side to the limit keeping the aspect ratio, never enlarging", () => {
    expect(fitWithin(1600, 1200, 160)).toEqual({ width: 160, height: 120 });
    expect(fitWithin(90, 3000, 160)).toEqual({ width: 5, height: 160 });
    expect(fitWithin(100, 80, 160)).toEqual({ width: 100, height: 80 });
  });
});
