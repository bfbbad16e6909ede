/**
 * Headless Chromium for the browser tests, through playwright-core and the system's Chromium package (no
 * browser download). A suite calls `requireChromium(this)` in `before`: without Chromium it is skipped
 * loudly on a developer machine and fails under CI, like the other service-backed suites.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import { requireService } from './services.js';

/** Debian's chromium package; override with CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function probeChromium(): Promise<string | undefined> {
  return access(CHROMIUM_PATH, constants.X_OK).then(
    () => undefined,
    () => `no executable at ${CHROMIUM_PATH}; install the chromium package or set CHROMIUM_PATH`,
  );
}

export async function requireChromium(mocha: Mocha.Context): Promise<void> {
  await requireService(mocha, 'Chromium', probeChromium);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
