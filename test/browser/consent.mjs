// Drives Debian's Chromium through the consent page, as a human on a phone would:
//   node test/browser/consent.mjs '{"url":"...","email":"...","decision":"approve|deny","callback":"https://..."}'
// Prints one JSON object: what the pages showed and where the browser landed (the callback, a
// local listener of the test harness, whose URL carries the code or the error).
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2]);
// Playwright gives each launch a fresh, temporary profile (user data dir).
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const result = { console_errors: [] };
try {
  // A phone-sized viewport: the pages must be readable without zooming or scrolling sideways.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text()); });

  const first = await page.goto(input.url);
  result.sign_in_status = first.status();
  result.sign_in_title = await page.title();
  result.shows_email = await page.locator('#email').innerText();
  result.shows_orchestrator = await page.locator('#orchestrator').innerText();
  result.shows_scopes = await page.locator('#scopes').innerText();
  // The nonce-carrying style block applied under the strict CSP (no CSP violation).
  result.main_background = await page.evaluate(() => getComputedStyle(document.querySelector('main')).backgroundColor);
  result.scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);

  await page.fill('#email-input', input.email);
  await Promise.all([page.waitForSelector('#approve'), page.click('#sign-in')]);
  result.approve_title = await page.title();
  result.approve_scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);

  const button = input.decision === 'deny' ? '#deny' : '#approve';
  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(input.callback)),
    page.click(button),
  ]);
  result.final_url = page.url();
  result.final_body = await page.locator('body').innerText();

  result.flow_console_errors = [...result.console_errors];
  // Opening the same link again shows that it was answered; nothing can be decided twice.
  const again = await page.goto(input.url);
  result.reopen_status = again.status();
  result.reopen_title = await page.title();
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
