// Drives Debian's Chromium through the owner's dashboard to lift the hard cap's pause:
//   node test/browser/raise_cap.mjs '{"url":"<deep link>","email":"<owner>","raise_dollars":500}'
// Reads what the page says is paused, signs in (the development form), raises the cap, and
// reads the page again. Prints one JSON object.
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
  const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text()); });
  const first = await page.goto(input.url);
  result.status = first.status();
  result.landing = await page.locator('#landing').getAttribute('data-anchor').catch(() => null);
  result.paused_before = await page.locator('#paused').innerText().catch(() => null);
  result.spend_before = await page.locator('#spend').innerText();
  result.resources_before = await page.locator('#resources').innerText();
  const submit = async (selector) => {
    const [response] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
    await page.waitForSelector('#notice');
    return response.status();
  };
  await page.fill('#email-input', input.email);
  result.sign_in_status = await submit('#sign-in');
  await page.fill('#cap', String(input.raise_dollars));
  result.raise_status = await submit('#save-cap');
  result.raise_notice = await page.locator('#notice').innerText();
  result.paused_after = await page.locator('#paused').count();
  result.spend_after = await page.locator('#spend').innerText();
  result.resources_after = await page.locator('#resources').innerText();
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
