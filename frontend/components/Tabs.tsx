"use client";

import type { KeyboardEvent } from "react";

export interface TabSpec {
  id: string;
  label: string;
  count?: number;
}

/** WAI-ARIA tabs: Tab reaches the active tab, arrow keys / Home / End move between tabs. */
export default function Tabs({
  tabs,
  active,
  onSelect,
  label,
}: {
  tabs: readonly TabSpec[];
  active: string;
  onSelect: (id: string) => void;
  label: string;
}) {
  const onKeyDown = (event: KeyboardEvent<HTMLButtonElement>, index: number) => {
    const moves: Record<string, number> = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
    onSelect(next.id);
    document.getElementById(`tab-${next.id}`)?.focus();
  };

  return (
    <nav aria-label={label}>
      <div role="tablist" aria-label={label} className="flex gap-1 rounded-lg border border-ink-line bg-ink-sunken p-1">
        {tabs.map((tab, index) => {
          const selected = tab.id === active;
          return (
            <button
              key={tab.id}
              id={`tab-${tab.id}`}
              role="tab"
              type="button"
              aria-selected={selected}
              aria-controls={`panel-${tab.id}`}
              tabIndex={selected ? 0 : -1}
              onClick={() => onSelect(tab.id)}
              onKeyDown={(event) => onKeyDown(event, index)}
              className={`rounded-md px-4 py-1.5 text-sm font-medium transition-colors ${
                selected ? "bg-ink-raised text-text shadow ring-1 ring-ink-line" : "text-text-muted hover:text-text"
              }`}
            >
              {tab.label}
              {tab.count !== undefined && tab.count > 0 && (
                <span className="tabular ml-2 rounded bg-ink-line px-1.5 py-0.5 text-xs text-text">{tab.count}</span>
              )}
            </button>
          );
        })}
      </div>
    </nav>
  );
}
