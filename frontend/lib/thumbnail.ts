/** Small JPEG thumbnails for the history (a few kB each), drawn in the browser. */

import { fitWithin } from "./geometry";

export const THUMBNAIL_SIDE = 160;

/** `source` (width × height) scaled to fit `maxSide`, as a JPEG data URL; null without a 2D canvas. */
function drawThumbnail(source: CanvasImageSource, width: number, height: number, maxSide: number): string | null {
  const fitted = fitWithin(width, height, maxSide);
  const canvas = document.createElement("canvas");
  canvas.width = fitted.width;
  canvas.height = fitted.height;
  const context = canvas.getContext("2d");
  if (!context) return null;
  context.drawImage(source, 0, 0, fitted.width, fitted.height);
  return canvas.toDataURL("image/jpeg", 0.72);
}

export async function makeThumbnail(file: Blob, maxSide = THUMBNAIL_SIDE): Promise<string | null> {
  try {
    const bitmap = await createImageBitmap(file);
    try {
      return drawThumbnail(bitmap, bitmap.width, bitmap.height, maxSide);
    } finally {
      bitmap.close();
    }
  } catch {
    // An image the browser cannot decode (e.g. TIFF) is still judged by the API; it just has no thumbnail.
    return null;
  }
}

/** A frame of a video (a blob: URL) at `atSeconds`, as a small JPEG data URL; null when the browser cannot
 * decode the clip (the server may still have judged it) or takes longer than `timeoutMs` per step. */
export async function makeVideoThumbnail(
  url: string,
  atSeconds: number,
  maxSide = THUMBNAIL_SIDE,
  timeoutMs = 5000,
): Promise<string | null> {
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "auto";
  try {
    const loaded = mediaEvent(video, "loadeddata", timeoutMs);
    video.src = url;
    await loaded;
    const seeked = mediaEvent(video, "seeked", timeoutMs);
    video.currentTime = Number.isFinite(video.duration) ? Math.min(Math.max(atSeconds, 0), video.duration) : atSeconds;
    await seeked;
    if (video.videoWidth === 0 || video.videoHeight === 0) return null;
    return drawThumbnail(video, video.videoWidth, video.videoHeight, maxSide);
  } catch {
    return null;
  } finally {
    video.removeAttribute("src");
    video.load(); // releases the decoder
  }
}

function mediaEvent(video: HTMLVideoElement, name: "loadeddata" | "seeked", timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      video.removeEventListener(name, succeeded);
      video.removeEventListener("error", failed);
      if (error) reject(error);
      else resolve();
    };
    const succeeded = () => done();
    const failed = () => done(new Error("the browser cannot decode this video"));
    const timer = setTimeout(() => done(new Error(`no ${name} within ${timeoutMs} ms`)), timeoutMs);
    video.addEventListener(name, succeeded);
    video.addEventListener("error", failed);
  });
}
