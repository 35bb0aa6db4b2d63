import type { Verdict } from "@/lib/types";
import { verdictStyle } from "@/lib/verdict";

export default function VerdictBadge({ verdict, size = "md" }: { verdict: Verdict; size?: "sm" | "md" | "lg" }) {
  const style = verdictStyle(verdict);
  const sizes = { sm: "px-1.5 py-0.5 text-[11px]", md: "px-2 py-0.5 text-xs", lg: "px-3 py-1 text-sm" };
  return (
    <span
      data-verdict={verdict}
      className={`inline-flex items-center gap-1.5 rounded font-semibold uppercase tracking-wider text-ink ${sizes[size]}`}
      style={{ backgroundColor: style.colour }}
    >
      <VerdictIcon verdict={verdict} />
      {style.label}
    </span>
  );
}

/** A shape per verdict, so the verdict never rests on colour alone. */
function VerdictIcon({ verdict }: { verdict: Verdict }) {
  const common = { width: 10, height: 10, viewBox: "0 0 10 10", "aria-hidden": true } as const;
  if (verdict === "authentic")
    return (
      <svg {...common}>
        <path d="M1.5 5.2 4 7.5 8.5 2.5" fill="none" stroke="currentColor" strokeWidth="1.8" />
      </svg>
    );
  if (verdict === "borderline")
    return (
      <svg {...common}>
        <path d="M1.5 5h7" stroke="currentColor" strokeWidth="1.8" />
      </svg>
    );
  return (
    <svg {...common}>
      <path d="M2 2l6 6M8 2 2 8" stroke="currentColor" strokeWidth="1.8" />
    </svg>
  );
}
