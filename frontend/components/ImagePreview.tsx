/* eslint-disable @next/next/no-img-element -- a local object URL or data URL; the static export has no
   image optimiser. */
import type { HistoryFace } from "@/lib/history";
import type { FaceResult } from "@/lib/types";
import { boxRect, judgedRegion, percentStyle } from "@/lib/geometry";
import { verdictStyle } from "@/lib/verdict";

/** Tall images are shown at most this high (CSS px), so a portrait photo does not push the verdicts off screen. */
const MAX_PREVIEW_HEIGHT = 520;

/** The image with a box on every judged face, coloured by verdict and numbered like the face cards; a face's
 * Grad-CAM overlay covers the region the model judged when its evidence is shown. */
export default function ImagePreview({
  src,
  alt,
  width,
  height,
  faces,
  evidence = [],
  compact = false,
}: {
  src: string;
  alt: string;
  width: number;
  height: number;
  faces: readonly (FaceResult | HistoryFace)[];
  evidence?: readonly boolean[];
  compact?: boolean;
}) {
  return (
    <div
      className="relative mx-auto overflow-hidden rounded-md bg-ink-sunken ring-1 ring-ink-line"
      style={compact ? undefined : { maxWidth: `${Math.round((MAX_PREVIEW_HEIGHT * width) / height)}px` }}
    >
      <img src={src} alt={alt} className="block h-auto w-full" style={{ aspectRatio: `${width} / ${height}` }} />
      {faces.map((face, index) => {
        const heatmap = "heatmap_png" in face ? face.heatmap_png : null;
        if (!evidence[index] || !heatmap) return null;
        return (
          <img
            key={`heatmap-${index}`}
            data-testid="heatmap-overlay"
            src={`data:image/png;base64,${heatmap}`}
            alt={`Grad-CAM evidence for face ${index + 1}`}
            className="absolute"
            style={percentStyle(judgedRegion(face.box, width, height), width, height)}
          />
        );
      })}
      {faces.map((face, index) =>
        face.box ? (
          <div
            key={`box-${index}`}
            data-testid="face-box"
            data-verdict={face.verdict}
            className="pointer-events-none absolute rounded-sm"
            style={{
              ...percentStyle(boxRect(face.box), width, height),
              border: `${compact ? 1.5 : 2}px solid ${verdictStyle(face.verdict).colour}`,
              boxShadow: "0 0 0 1px rgba(0,0,0,0.6)",
            }}
          >
            {!compact && (
              <span
                className={`absolute left-0 whitespace-nowrap px-1.5 py-px text-[11px] font-semibold text-ink ${
                  face.box.y < height * 0.08 ? "top-0 rounded-br-sm" : "-top-px -translate-y-full rounded-t-sm"
                }`}
                style={{ backgroundColor: verdictStyle(face.verdict).colour }}
              >
                {index + 1} · {verdictStyle(face.verdict).label}
              </span>
            )}
          </div>
        ) : null,
      )}
    </div>
  );
}
