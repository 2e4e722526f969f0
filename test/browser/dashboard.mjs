// Drives Debian's Chromium through the owner's dashboard behind a deep link:
//   node test/browser/dashboard.mjs '{"url":"...","cap_dollars":50,"raise_dollars":500,
//                                     "email":"<owner>","buy":"<domain>"}'
// With the link alone: a raise and a purchase are refused, lowering works. Then the owner signs
// in (the development form) and raises the cap and buys. Prints one JSON object with what the
// pages showed after each step.
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { console_errors: [] };
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text()); });
  const first = await page.goto(input.url);
  result.status = first.status();
  result.owner = await page.locator('#owner').innerText();
  result.plan = await page.locator('#plan').innerText();
  result.spend_before = await page.locator('#spend').innerText();
  result.scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);

  result.sign_in_offered = await page.locator('#owner-sign-in').count() === 1;

  // Submits a form by clicking `selector`; returns the status of the page it lands on.
  const submit = async (selector) => {
    const [response] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
    await page.waitForSelector('#notice');
    return response.status();
  };

  // The link alone: raising the cap is refused, nothing changes.
  await page.fill('#cap', String(input.raise_dollars));
  result.raise_refused_status = await submit('#save-cap');
  result.raise_refused_notice = await page.locator('#notice').innerText();
  result.spend_after_refused = await page.locator('#spend').innerText();
  if (input.buy) {
    result.buy_refused_status = await submit(`button[data-domain="${input.buy}"]`);
    result.buy_refused_notice = await page.locator('#notice').innerText();
  }

  // Lowering stays one click.
  await page.fill('#cap', String(input.cap_dollars));
  result.cap_status = await submit('#save-cap');
  result.cap_notice = await page.locator('#notice').innerText();
  result.spend_after_cap = await page.locator('#spend').innerText();

  // The owner signs in (the development form), then raises the cap and buys.
  await page.fill('#email-input', input.email);
  result.sign_in_status = await submit('#sign-in');
  result.sign_in_notice = await page.locator('#notice').innerText();
  result.signed_in = await page.locator('#signed-in').innerText();
  await page.fill('#cap', String(input.raise_dollars));
  result.raise_status = await submit('#save-cap');
  result.raise_notice = await page.locator('#notice').innerText();
  result.spend_after_raise = await page.locator('#spend').innerText();

  if (input.buy) {
    const button = page.locator(`button[data-domain="${input.buy}"]`);
    result.buy_label = await button.innerText();
    await Promise.all([page.waitForNavigation(), button.click()]);
    await page.waitForSelector('#notice');
    result.buy_notice = await page.locator('#notice').innerText();
    result.resources = await page.locator('#resources').innerText();
    result.spend_after_buy = await page.locator('#spend').innerText();
  }
  result.flow_console_errors = [...result.console_errors];
  // The link opens once.
  const again = await page.goto(input.url);
  result.reopen_status = again.status();
  result.reopen_title = await page.title();
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
