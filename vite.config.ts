import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  worker: { format: 'es' },
  // Pre-bundled at start: otherwise the first ONNX scan in `npm run dev` makes Vite re-bundle and reload the page.
  optimizeDeps: { include: ['onnxruntime-web', 'onnx-proto'] },
  build: { target: 'es2022', chunkSizeWarningLimit: 2000 },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
