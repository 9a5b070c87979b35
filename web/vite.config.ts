// The console is built into dist/ and embedded in vppd (cmake/embed_console.cmake).
// No inline script or style anywhere: vppd serves it under a CSP without 'unsafe-inline'.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2020',
    modulePreload: { polyfill: false },  // the polyfill is an inline script
    assetsInlineLimit: 0,                // no data: URLs for assets
    cssCodeSplit: false,
    reportCompressedSize: true,
  },
});
