"use client";

import { useEffect, useState } from "react";
import AnalyseView from "./AnalyseView";
import HistoryView from "./HistoryView";
import ModelView from "./ModelView";
import VideoView from "./VideoView";
import Tabs, { type TabSpec } from "./Tabs";
import { apiUrl } from "@/lib/api";
import { useHistory } from "@/lib/useHistory";

/** The views, in tab order. A new view (e.g. Video) is one more entry here. The URL hash names the open tab, so a
 * reload or a shared link opens the same view. */
const TABS: readonly TabSpec[] = [
  { id: "analyse", label: "Analyse" },
  { id: "video", label: "Video" },
  { id: "history", label: "History" },
  { id: "model", label: "Model" },
];

function tabFromHash(hash: string): string {
  const id = hash.replace(/^#/, "");
  return TABS.some((tab) => tab.id === id) ? id : TABS[0].id;
}

export default function Dashboard() {
  const [active, setActive] = useState<string>(TABS[0].id);
  const history = useHistory();

  useEffect(() => {
    const sync = () => setActive(tabFromHash(window.location.hash));
    sync();
    window.addEventListener("hashchange", sync);
    return () => window.removeEventListener("hashchange", sync);
  }, []);

  const open = (id: string) => {
    setActive(id);
    window.history.replaceState(null, "", `#${id}`);
  };

  return (
    <div className="mx-auto flex min-h-screen max-w-7xl flex-col px-4 sm:px-6">
      <header className="flex flex-wrap items-center justify-between gap-4 border-b border-ink-line py-4">
        <div className="flex items-center gap-3">
          <Logo />
          <div>
            <h1 className="text-lg font-semibold tracking-tight">Détecteur</h1>
            <p className="text-xs text-text-muted">Face forensics — authentic or synthetic, how sure, and why</p>
          </div>
        </div>
        <Tabs
          tabs={TABS.map((tab) => (tab.id === "history" ? { ...tab, count: history.entries.length } : tab))}
          active={active}
          onSelect={open}
          label="Views"
        />
      </header>
      <main className="flex-1 py-6">
        <section id="panel-analyse" role="tabpanel" aria-labelledby="tab-analyse" hidden={active !== "analyse"}>
          <AnalyseView onAnalysed={history.add} />
        </section>
        <section id="panel-video" role="tabpanel" aria-labelledby="tab-video" hidden={active !== "video"}>
          <VideoView onAnalysed={history.add} />
        </section>
        <section id="panel-history" role="tabpanel" aria-labelledby="tab-history" hidden={active !== "history"}>
          <HistoryView entries={history.entries} onClear={history.clear} notice={history.notice} />
        </section>
        <section id="panel-model" role="tabpanel" aria-labelledby="tab-model" hidden={active !== "model"}>
          {active === "model" && <ModelView />}
        </section>
      </main>
      <footer className="border-t border-ink-line py-4 text-xs text-text-faint">
        A second opinion for analysts, not an automated decision about a person. Images and videos are sent only to this
        Détecteur server; the history stays in this browser. <a className="underline hover:text-text" href={apiUrl("/docs")}>API docs</a>
      </footer>
    </div>
  );
}

function Logo() {
  return (
    <svg aria-hidden="true" width="36" height="36" viewBox="0 0 32 32">
      <rect width="32" height="32" rx="6" fill="#111821" stroke="#243041" />
      <path d="M7 11V7h4M21 7h4v4M25 21v4h-4M11 25H7v-4" fill="none" stroke="#7cc4ff" strokeWidth="2" />
      <circle cx="16" cy="16" r="3.5" fill="#fb7185" />
    </svg>
  );
}
