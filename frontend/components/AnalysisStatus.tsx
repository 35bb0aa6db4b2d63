import type { ErrorExplanation } from "@/lib/api";

/** The spinner shown while the API judges an upload (image or video). */
export function Working({ label }: { label: string }) {
  return (
    <span className="flex items-center gap-2 text-sm text-text-muted">
      <span aria-hidden="true" className="h-3 w-3 animate-spin rounded-full border-2 border-accent border-t-transparent" />
      {label}
    </span>
  );
}

/** Why an upload could not be judged, announced to screen readers. */
export function ErrorAlert({ error, testId }: { error: ErrorExplanation; testId: string }) {
  return (
    <div role="alert" data-testid={testId} className="rounded-md border border-verdict-synthetic/60 bg-verdict-synthetic/10 p-3 text-sm">
      <p className="font-semibold text-verdict-synthetic">{error.title}</p>
      <p className="mt-1 text-text">{error.detail}</p>
    </div>
  );
}
