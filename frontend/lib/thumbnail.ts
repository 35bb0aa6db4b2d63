/** Small JPEG thumbnails for the history (a few kB each), drawn in the browser. */

import { fitWithin } from "./geometry";

export const THUMBNAIL_SIDE = 160;

export async function makeThumbnail(file: Blob, maxSide = THUMBNAIL_SIDE): Promise<string | null> {
  try {
    const bitmap = await createImageBitmap(file);
    const { width, height } = fitWithin(bitmap.width, bitmap.height, maxSide);
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    if (!context) return null;
    context.drawImage(bitmap, 0, 0, width, height);
    bitmap.close();
    return canvas.toDataURL("image/jpeg", 0.72);
  } catch {
    // An image the browser cannot decode (e.g. TIFF) is still judged by the API; it just has no thumbnail.
    return null;
  }
}
