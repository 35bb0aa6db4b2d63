import type { Config } from "tailwindcss";

const config: Config = {
  content: ["./app/**/*.{ts,tsx}", "./components/**/*.{ts,tsx}", "./lib/**/*.ts"],
  darkMode: "class",
  theme: {
    extend: {
      colors: {
        // A dark forensics palette; text colours keep >= 4.5:1 on every surface (see tests/verdict.test.ts).
        ink: { DEFAULT: "#0b0f14", raised: "#111821", sunken: "#080b0f", line: "#243041" },
        text: { DEFAULT: "#e6edf3", muted: "#9fb0c3", faint: "#8594a8" },
        accent: { DEFAULT: "#7cc4ff", strong: "#a5d8ff" },
        verdict: { authentic: "#34d399", borderline: "#fbbf24", synthetic: "#fb7185" },
      },
      fontFamily: {
        // System fonts only: nothing is fetched at run time, the dashboard works offline.
        sans: ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
        mono: ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
      },
    },
  },
  plugins: [],
};

export default config;
