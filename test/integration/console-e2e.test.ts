// The console (web/, served at /) end to end in headless Chromium: Debian's /usr/bin/chromium
// driven by playwright-core (which never downloads a browser). Skipped, saying why, where that
// binary is missing; .ci/run installs it.
//
// UPDATE_SCREENSHOTS=1 writes the screenshots into docs/screenshots/ (linked from
// docs/operations.md); otherwise they go to a temporary directory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { REPO_ROOT } from '../harness/process.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'e2e-console-token';
const WAIT_MS = 15_000;
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does) to run the console's end-to-end test`;
const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';
const built = existsSync(join(REPO_ROOT, 'dist', 'console', 'index.html'));

describe('console in a browser, end to end', { skip }, () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  let shots: string;
  /** console errors and uncaught exceptions of the page; network errors are allowed only while Redis is down */
  const errors: string[] = [];
  let redisDown = false;

  /** a steady trickle of users (a few per second) so that the charts have something to show */
  let stopWriting = false;
  let writing: Promise<void> = Promise.resolve();
  const writeUsers = async (): Promise<void> => {
    for (let id = 1000; !stopWriting; id++) {
      await env.pg.query(`insert into users values ($1, $2)`, [id, `writer${id}`]);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  /** the steps build on each other: after a failure the later ones are skipped, not timed out */
  let broken: string | null = null;
  const step = (name: string, fn: () => Promise<void>): void => {
    test(name, async (t) => {
      if (broken !== null) return t.skip(`an earlier step failed: ${broken}`);
      try {
        await fn();
      } catch (err) {
        broken = name;
        throw err;
      }
    });
  };
  /** a screenshot once the charts are drawn, without the passing notices */
  const shot = async (name: string, fullPage = false): Promise<void> => {
    await page.locator('figure.chart .chart-canvas:not(:has(canvas))').first().waitFor({ state: 'detached' });
    // (the page's CSP refuses injected style sheets: the notices are hidden through the DOM)
    await page.evaluate("window.scrollTo(0, 0); document.querySelector('.toasts').style.display = 'none'");
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
    await page.evaluate("document.querySelector('.toasts').style.display = ''");
  };
  const visible = async (l: Locator): Promise<Locator> => {
    await l.first().waitFor({ state: 'visible', timeout: WAIT_MS });
    return l.first();
  };
  const redisHas = (key: string): Promise<string | null> => eventually(() => redis.get(key), (v) => v !== null, WAIT_MS, `Redis key ${key}`);

  before(async () => {
    assert.ok(built, 'dist/console/ is missing: npm ci builds it (npm run build:console)');
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table orders (id int primary key, customer text not null, amount numeric(10,2));
      insert into orders select i, 'customer ' || i, i * 10.5 from generate_series(1, 3) i;
      create table users (id int primary key, name text);`);
    const path = env.writeConfig(`  - name: users
    type: string
    tables: [users]
    actions: [insert]
    key: "user:{name}"`);
    writeFileSync(path, readFileSync(path, 'utf8').replace(/^http:\n/m, `http:\n  token: ${TOKEN}\n`));
    await env.start();
    redis = env.redis.client();
    writing = writeUsers();
    profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
    shots = UPDATE_SCREENSHOTS ? join(REPO_ROOT, 'docs', 'screenshots') : mkdtempSync(join(tmpdir(), 'sluice-shots-'));
    mkdirSync(shots, { recursive: true });
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 820 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(WAIT_MS);
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      if (redisDown && /Failed to load resource: the server responded with a status of 5\d\d/.test(m.text())) return;
      errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  });

  after(async () => {
    stopWriting = true;
    await writing;
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (shots && !UPDATE_SCREENSHOTS) rmSync(shots, { recursive: true, force: true });
    await env?.stop();
  });

  step('sign in with the token; the overview shows the source and the sinks', async () => {
    await page.goto(`http://127.0.0.1:${env.httpPort}/`);
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await visible(page.locator('#source').getByText('streaming'));
    await visible(page.locator('#sinks tr[data-sink="users"]'));
    assert.equal(await page.evaluate("sessionStorage.getItem('sluice-token')"), TOKEN, 'kept in the tab');
    assert.ok(!page.url().includes(TOKEN), 'never in the URL');
    assert.deepEqual(errors, []);
  });

  step('create a sink from the form after previewing it, with a function error shown where it happens', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New sink' }).click();
    await page.getByRole('textbox', { name: 'Name', exact: true }).fill('orders-cache');
    await page.getByRole('textbox', { name: 'Tables', exact: true }).fill('public.orders');
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('order:{id}');
    await page.getByRole('button', { name: 'Add a transform' }).click();
    await page.getByRole('textbox', { name: 'transform', exact: true }).fill(`function transform(action, record) {
  if (record.id === 2) throw new Error('order 2 is not for the cache');
  return { customer: record.customer, amount: record.amount };
}`);
    // the live preview: rows 1 and 3 become SETs, row 2 fails in the transform, named there
    await visible(page.locator('#preview li[data-row="1"].failed').getByText('order 2 is not for the cache'));
    await visible(page.locator('#f-transform-error').getByText('row 2: transform threw'));
    await visible(page.locator('#preview li[data-row="0"]').getByText('order:1'));
    assert.match(await page.locator('#preview li[data-row="2"] li.command').innerText(), /^SET order:3 \{"customer":"customer 3","amount":31\.50?\}/);
    await page.getByRole('button', { name: 'Test connection' }).click();
    await visible(page.locator('#redis-test-result').getByText('PONG'));
    await shot('create-sink', true);

    await page.getByRole('textbox', { name: 'transform', exact: true }).fill(`function transform(action, record) {
  return { customer: record.customer, amount: record.amount };
}`);
    await page.locator('#preview li.failed').waitFor({ state: 'detached' });
    await visible(page.locator('#preview li[data-row="1"]').getByText('order:2'));
    assert.equal(await redis.get('order:1'), null, 'a preview writes nothing');

    await page.getByRole('button', { name: 'Create sink' }).click();
    await visible(page.getByRole('heading', { name: /orders-cache/ }));
    assert.match(page.url(), /#\/sinks\/orders-cache$/);
    assert.deepEqual(errors, []);
  });

  step('a row arrives: listed in the recent deliveries, and the chart moves', async () => {
    await env.pg.query(`insert into orders values (10, 'ann', 99.90)`);
    // the transform's result is JSON from JavaScript: 99.90 is the number 99.9
    assert.equal(await redisHas('order:10'), '{"customer":"ann","amount":99.9}');
    await visible(page.locator('#chart-sink-rate[data-max]:not([data-max="0"])'));
    // this sink's own commit → in Redis time, not the instance's batches
    await visible(page.locator('#chart-sink-latency[data-max]:not([data-max="0"])'));
    const tabs = page.getByRole('navigation', { name: 'orders-cache sections' });
    await tabs.getByRole('link', { name: 'Messages' }).click();
    await visible(page.locator('#deliveries').getByText('order:10'));
    await tabs.getByRole('link', { name: 'Overview' }).click();
    await shot('sink');
    assert.deepEqual(errors, []);
  });

  step('pause and resume the sink: what it missed is applied on resume', async () => {
    await page.getByRole('button', { name: 'Pause' }).click();
    await visible(page.locator('.page-head').getByText('paused', { exact: true }));
    await env.pg.query(`insert into orders values (11, 'bob', 5)`);
    await page.getByRole('button', { name: 'Resume' }).click();
    await visible(page.locator('.page-head').getByText('active', { exact: true }));
    assert.equal(await redisHas('order:11'), '{"customer":"bob","amount":5}');
    assert.deepEqual(errors, []);
  });

  step('start a backfill of the whole sink and watch it finish', async () => {
    await page.getByRole('button', { name: 'Start backfill' }).click();
    await visible(page.locator('#backfills li.backfill[data-state="done"][data-table="public.orders"]'));
    assert.match(await page.locator('#backfills li.backfill').first().innerText(), /5 of ~5 rows/);
    assert.equal(await redis.get('order:2'), '{"customer":"customer 2","amount":21}');
    assert.deepEqual(errors, []);
  });

  step('edit the sink: the form starts from its block and saves what changed', async () => {
    await page.locator('.page-head').getByRole('link', { name: 'Edit' }).click();
    const key = await visible(page.getByRole('textbox', { name: 'Key', exact: true }));
    assert.equal(await key.inputValue(), 'order:{id}');
    await key.fill('order:v2:{id}');
    await visible(page.locator('#preview li[data-row="0"]').getByText('order:v2:1'));
    await page.getByRole('button', { name: 'Save changes' }).click();
    await visible(page.locator('#sink-config').getByText('"key": "order:v2:{id}"'));
    await env.pg.query(`insert into orders values (13, 'dan', 2)`);
    assert.equal(await redisHas('order:v2:13'), '{"customer":"dan","amount":2}');
    assert.deepEqual(errors, []);
  });

  step('a failed message is listed with its reason and envelope, then retried', async () => {
    await env.pg.query(`insert into users values (1, null)`);
    await page.goto(`http://127.0.0.1:${env.httpPort}/#/sinks/users/messages`);
    const row = await visible(page.locator('#failed tbody tr'));
    await visible(row.getByText('column "name" is NULL'));
    await row.getByText('Envelope').click();
    await visible(row.locator('pre').getByText('"name": null'));
    await shot('messages');
    // the sink takes inserts only: the update reaches Redis through the retry alone
    await env.pg.query(`update users set name = 'ann' where id = 1`);
    await row.getByRole('button', { name: /^Retry/ }).click();
    await visible(page.locator('.toasts').getByText(/Retried .*: applied/));
    await visible(page.locator('#no-failed'));
    assert.equal(await redis.get('user:ann'), '{"id":1,"name":"ann"}');
    assert.deepEqual(errors, []);
  });

  step('the overview with activity; while Redis is down it shows what it knows and the error', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).click();
    await visible(page.locator('#sinks tr[data-sink="orders-cache"]'));
    await visible(page.locator('#chart-throughput[data-max]:not([data-max="0"])'));
    // for the documentation's picture, curves of half a minute (a test run is shorter)
    if (UPDATE_SCREENSHOTS) await eventually(() => page.locator('#chart-throughput').getAttribute('data-points'), (n) => Number(n) >= 15, 45_000, '15 samples');
    await shot('overview', true);
    assert.deepEqual(errors, []);

    redisDown = true;
    await env.redis.kill();
    await env.pg.query(`insert into orders values (12, 'eve', 1)`);
    await visible(page.locator('#health.bad').getByText(/redis/i));
    await visible(page.locator('#sinks tr[data-sink="orders-cache"] td.reason .error-text'));
    await visible(page.locator('#source').getByText('streaming'));
    await shot('redis-down', true);
    await env.redis.start();
    await visible(page.locator('#health.ok'));
    redisDown = false;
    assert.deepEqual(errors, []);
  });

  step('in a phone-wide window nothing is cut: the page never scrolls sideways (wide tables scroll in place)', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    const pages: [string, string][] = [
      ['#/', '#sinks tr[data-sink="orders-cache"]'],
      ['#/sinks/orders-cache', '#backfills li.backfill'],
      ['#/sinks/users/messages', '#deliveries tbody tr'],
      ['#/new', '#preview'],
    ];
    for (const [hash, content] of pages) {
      await page.goto(`http://127.0.0.1:${env.httpPort}/${hash}`);
      await visible(page.locator(content));
      assert.ok(Number(await page.evaluate('document.documentElement.scrollWidth')) <= 390, `${hash} is wider than the window`);
    }
    await page.setViewportSize({ width: 1200, height: 820 });
    assert.deepEqual(errors, []);
  });

  step('delete the sink by keyboard, once confirmed (Escape cancels)', async () => {
    await page.goto(`http://127.0.0.1:${env.httpPort}/#/sinks/orders-cache`);
    const del = await visible(page.locator('.page-head').getByRole('button', { name: 'Delete' }));
    const dialog = page.getByRole('dialog', { name: 'Delete sink orders-cache?' });
    await del.focus();
    await page.keyboard.press('Enter');
    await visible(dialog);
    assert.equal(await page.evaluate('document.activeElement.textContent'), 'Cancel', 'focus starts on Cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await del.focus();
    await page.keyboard.press('Enter');
    await visible(dialog);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.textContent'), 'Delete sink');
    await page.keyboard.press('Enter');
    await visible(page.locator('#sinks tr[data-sink="users"]'));
    await page.locator('#sinks tr[data-sink="orders-cache"]').waitFor({ state: 'detached' });
    assert.deepEqual(errors, []);
  });
});
