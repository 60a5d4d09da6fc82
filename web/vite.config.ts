// Build and unit-test configuration for the vmws web UI.
//
// The build lands in the Python package (vmws/static) so `pip install` users need no
// Node.js. index.html is served by vmws at "/", the hashed assets under "/ui/assets/"
// (vmws/web.py caches those forever). No plugin-react: Vite's own transform with
// the automatic JSX runtime is all the build needs, and keeps the tool chain small.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/ui/",
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: "../vmws/static",
    emptyOutDir: true,
    assetsDir: "assets",
    // Never inline assets as data: URLs; the Content-Security-Policy allows 'self' only.
    assetsInlineLimit: 0,
    // No source maps in the Python package: they would double its size.
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    restoreMocks: true,
  },
});
