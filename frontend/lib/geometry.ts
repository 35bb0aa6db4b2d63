/** Where things sit on the preview. Boxes are in image pixels; the preview scales, so positions are percents. */

import type { Box } from "./types";

/** The margin around a detected face that the service crops with (`detecteur.inputs.faces.FACE_MARGIN`). */
export const FACE_MARGIN = 1.4;

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The square region the model judged, as `FaceBox.square_crop` computes it: the face box enlarged by the margin,
 * shifted (never padded) to stay inside the image; with no face, the centred square of the whole image. The
 * Grad-CAM overlay covers exactly this region. */
export function judgedRegion(box: Box | null, imageWidth: number, imageHeight: number, margin = FACE_MARGIN): Rect {
  if (box === null) {
    const side = Math.min(imageWidth, imageHeight);
    return {
      left: Math.floor((imageWidth - side) / 2),
      top: Math.floor((imageHeight - side) / 2),
      width: side,
      height: side,
    };
  }
  const side = Math.min(pyRound(Math.max(box.width, box.height) * margin), imageWidth, imageHeight);
  const centreX = box.x + box.width / 2;
  const centreY = box.y + box.height / 2;
  const left = Math.trunc(Math.min(Math.max(pyRound(centreX - side / 2), 0), imageWidth - side));
  const top = Math.trunc(Math.min(Math.max(pyRound(centreY - side / 2), 0), imageHeight - side));
  return { left, top, width: side, height: side };
}

/** Python's round(): halves go to the even neighbour, so the region matches the service's pixel for pixel. */
export function pyRound(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

export function boxRect(box: Box): Rect {
  return { left: box.x, top: box.y, width: box.width, height: box.height };
}

/** CSS percentages of `rect` within an image of the given size, clipped to the image. */
export function percentStyle(rect: Rect, imageWidth: number, imageHeight: number) {
  const left = Math.max(0, rect.left);
  const top = Math.max(0, rect.top);
  const right = Math.min(imageWidth, rect.left + rect.width);
  const bottom = Math.min(imageHeight, rect.top + rect.height);
  return {
    left: `${(100 * left) / imageWidth}%`,
    top: `${(100 * top) / imageHeight}%`,
    width: `${(100 * Math.max(0, right - left)) / imageWidth}%`,
    height: `${(100 * Math.max(0, bottom - top)) / imageHeight}%`,
  };
}

/** Thumbnail size that fits `maxSide` keeping the aspect ratio, never enlarging. */
export function fitWithin(width: number, height: number, maxSide: number): { width: number; height: number } {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}
