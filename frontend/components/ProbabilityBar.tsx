import type { Verdict } from "@/lib/types";
import { axisTicks, bandSegments, clampUnit, percent, verdictStyle } from "@/lib/verdict";

/** The calibrated fake probability on a 0–100 % axis, with the verdict zones, the borderline band and the
 * model's threshold marked. */
export default function ProbabilityBar({
  probability,
  verdict,
  threshold,
  band,
  label,
}: {
  probability: number;
  verdict: Verdict;
  threshold: number;
  band: readonly [number, number];
  label: string;
}) {
  const position = `${clampUnit(probability) * 100}%`;
  return (
    <div>
      <div
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(clampUnit(probability) * 1000) / 10}
        aria-valuetext={`${percent(probability, 1)} fake probability, ${verdict}`}
        className="relative h-3 rounded-full bg-ink-sunken ring-1 ring-ink-line"
      >
        {bandSegments(band).map((segment) => (
          <div
            key={segment.verdict}
            className="absolute inset-y-0"
            style={{
              left: `${segment.from * 100}%`,
              width: `${(segment.to - segment.from) * 100}%`,
              backgroundColor: `${verdictStyle(segment.verdict).colour}30`,
            }}
          />
        ))}
        <div
          className="absolute inset-y-0 left-0 rounded-l-full"
          style={{ width: position, backgroundColor: `${verdictStyle(verdict).colour}b0` }}
        />
        <div
          title={`threshold ${percent(threshold, 1)}`}
          className="absolute -inset-y-1 w-0.5 bg-text"
          style={{ left: `${clampUnit(threshold) * 100}%` }}
        />
        <div
          className="absolute top-1/2 h-4 w-4 -translate-x-1/2 -translate-y-1/2 rounded-full border-2 border-ink"
          style={{ left: position, backgroundColor: verdictStyle(verdict).colour }}
        />
      </div>
      <div className="relative mt-1 h-4 text-[11px] text-text-faint tabular" aria-hidden="true">
        {axisTicks(band).map((tick) => (
          <span
            key={tick.text}
            className={
              tick.at === 0 ? "absolute left-0" : tick.at === 1 ? "absolute right-0" : "absolute -translate-x-1/2"
            }
            style={tick.at === 0 || tick.at === 1 ? undefined : { left: `${tick.at * 100}%` }}
          >
            {tick.text}
          </span>
        ))}
      </div>
    </div>
  );
}
