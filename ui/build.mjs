/**
 * Bundles the dashboard (ui/src, Preact + htm + uPlot) into ui/dist with esbuild: one script,
 * one stylesheet and the page, all served by the gateway at /ui — nothing is fetched from a CDN.
 * `npm run build:ui` (and scripts/setup.sh) runs it; the gateway runs it too when ui/dist is
 * missing and esbuild is installed.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds the bundle into `outdir` (default ui/dist); resolves with the folder. */
export async function buildUi(outdir = join(here, 'dist')) {
  const { build } = await import('esbuild');
  await mkdir(outdir, { recursive: true });
  await build({
    entryPoints: { app: join(here, 'src', 'main.js') },
    bundle: true,
    format: 'esm',
    target: ['es2020'],
    minify: true,
    sourcemap: false,
    outdir,
    logLevel: 'warning',
    legalComments: 'none',
  });
  await copyFile(join(here, 'index.html'), join(outdir, 'index.html'));
  return outdir;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = await buildUi(process.argv[2]);
  console.log(`dashboard built into ${out}`);
}
