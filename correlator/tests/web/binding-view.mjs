// Drives the binding view (`correlator tail --web`) in headless Chromium for
// correlator/tests/web.rs: waits for the page to reload by itself, pauses it,
// reads the numbers it shows, clicks the first component, searches by a
// label, and writes screenshots. Prints what it saw
// as JSON; the Rust test compares it with the topics.
//
// node binding-view.mjs BASE_URL SCREENSHOT_DIR SEARCH_QUERY

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [baseUrl, screenshotDir, searchQuery] = process.argv.slice(2);
mkdirSync(screenshotDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'binding-view-chromium-'));

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1100, height: 900 },
});

const number = async (locator) => Number((await locator.innerText()).trim());

try {
  const page = context.pages()[0] ?? await context.newPage();
  const response = await page.goto(baseUrl + '/', { waitUntil: 'load' });
  const seen = { status: response.status(), title: await page.title(), tenants: {}, components: {} };
  // It reloads by itself...
  await page.waitForEvent('load', { timeout: 30000 });
  seen.reloaded = true;
  // ... until paused, which the rest reads undisturbed.
  await Promise.all([page.waitForURL(/pause=1/), page.click('#pause')]);

  for (const section of await page.locator('section.tenant').all()) {
    const tenant = await section.getAttribute('data-tenant');
    const reasons = {};
    for (const row of await section.locator('tr[data-reason]').all()) {
      reasons[await row.getAttribute('data-reason')] =
        await number(row.locator('[data-test=reason-samples]'));
    }
    seen.tenants[tenant] = {
      bound: await number(section.locator('[data-test=bound-samples]')),
      unbound: await number(section.locator('[data-test=unbound-samples]')),
      reasons,
      charts: await section.locator('svg.minutes').count(),
    };
  }
  for (const row of await page.locator('#components tr[data-component]').all()) {
    seen.components[await row.getAttribute('data-component')] =
      await number(row.locator('[data-test=component-series]'));
  }
  seen.unboundExamples = await page.locator('tr.example').count();
  seen.unboundDetails = await page.locator('tr.example td.detail').allInnerTexts();
  await page.screenshot({ path: join(screenshotDir, 'binding-view.png'), fullPage: true });

  // A component's page, by clicking its link as a person would.
  const link = page.locator('#components a.component').first();
  seen.clicked = await link.getAttribute('title');
  await Promise.all([page.waitForURL(/\/component\?/), link.click()]);
  seen.component = {
    id: await page.locator('h1[data-component]').getAttribute('data-component'),
    series: await number(page.locator('[data-test=component-series]')),
    rows: await page.locator('#series tr.series').count(),
    sparklines: await page.locator('#series svg.spark').count(),
  };
  await page.screenshot({ path: join(screenshotDir, 'component.png') });

  // A search by label, through the form.
  await page.fill('input[name=q]', searchQuery);
  await Promise.all([page.waitForURL(/\/search\?/), page.click('button[type=submit]')]);
  seen.search = {
    hits: await number(page.locator('[data-test=hits]')),
    rows: await page.locator('#hits tr.series').count(),
  };
  console.log(JSON.stringify(seen));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
