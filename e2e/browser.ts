// Debian's Chromium driven by playwright-core (no browser download), with WebGPU on.
import { join } from 'node:path';
import { chromium, type Browser, type Download, type Page } from 'playwright-core';
import { expect, inject } from 'vitest';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/** The studio's URL, pointed at the mock Hub started by global-setup.ts. */
export function studioUrl(hash = ''): string {
  const hub = inject('hubUrl');
  const q = new URLSearchParams({ hub, datasets: `${hub}/datasets-server` });
  return `${inject('appUrl')}?${q}${hash}`;
}

/** Collects console errors and uncaught page errors, so a test can assert there were none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/** Drops a file on the element with this test id as from the desktop: dragenter, dragover and
 *  drop events carrying a DataTransfer that holds the File. */
export async function dropFile(page: Page, testId: string, file: { name: string; text: string; type?: string }): Promise<void> {
  const transfer = await page.evaluateHandle((f) => {
    const dt = new DataTransfer();
    dt.items.add(new File([f.text], f.name, { type: f.type ?? 'application/jsonl' }));
    return dt;
  }, file);
  const target = page.getByTestId(testId);
  for (const type of ['dragenter', 'dragover', 'drop']) await target.dispatchEvent(type, { dataTransfer: transfer });
  await transfer.dispose();
}

/** Keeps the page's downloads (across reloads). The function it returns runs `action`, waits for
 *  `n` downloads from it, saves them under `dir` and resolves to their paths by file name. */
export function watchDownloads(page: Page, dir: string, timeout = 120_000): (n: number, action: () => Promise<void>) => Promise<Map<string, string>> {
  const downloads: Download[] = [];
  page.on('download', (d) => downloads.push(d));
  return async (n, action) => {
    const from = downloads.length;
    await action();
    await expect.poll(() => downloads.length - from, { timeout }).toBeGreaterThanOrEqual(n);
    const out = new Map<string, string>();
    for (const d of downloads.slice(from, from + n)) {
      const path = join(dir, d.suggestedFilename());
      await d.saveAs(path);
      expect(await d.failure()).toBeNull();
      out.set(d.suggestedFilename(), path);
    }
    return out;
  };
}
