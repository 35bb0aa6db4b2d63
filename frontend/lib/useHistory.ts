"use client";

import { useCallback, useEffect, useState } from "react";
import { clearHistory, type HistoryEntry, loadHistory, prepend, saveHistory } from "./history";

/** The history store bound to `localStorage`, kept in step across tabs of the same browser. */
export function useHistory() {
  const [entries, setEntries] = useState<HistoryEntry[]>([]);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    setEntries(loadHistory(window.localStorage));
    const onStorage = (event: StorageEvent) => {
      if (event.storageArea === window.localStorage) setEntries(loadHistory(window.localStorage));
    };
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, []);

  const add = useCallback((added: HistoryEntry[]) => {
    const wanted = prepend(loadHistory(window.localStorage), added);
    try {
      const stored = saveHistory(window.localStorage, wanted);
      setNotice(
        stored.length < wanted.length || stored.some((entry, i) => entry.thumbnail !== wanted[i].thumbnail)
          ? "The browser's storage is full: the oldest thumbnails or entries were dropped."
          : null,
      );
      setEntries(stored);
    } catch {
      setNotice("The browser refused to store the history (private mode?); it lasts until this page closes.");
      setEntries(wanted);
    }
  }, []);

  const clear = useCallback(() => {
    clearHistory(window.localStorage);
    setEntries([]);
    setNotice(null);
  }, []);

  return { entries, add, clear, notice };
}
