// Opens a service's Swagger UI (/docs) in headless Chromium and checks what a visitor relies on:
// every operation of the service's /openapi.json is listed, "Try it out" on a public GET answers
// 200, and the page loads nothing from outside the service. Saves a full-page screenshot.
//
//   node docs-ui.mjs BASE_URL PUBLIC_GET_PATH SCREENSHOT.png
//
// Chromium: $CHROMIUM or Debian's /usr/bin/chromium. Prints one JSON line; exits 1 on a failure.
import { chromium } from "playwright-core";

const [base, tryPath, screenshot] = process.argv.slice(2);
const failures = [];

const spec = await (await fetch(`${base}/openapi.json`)).json();
const expected = new Set(
  Object.entries(spec.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
  ),
);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const outside = [];
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(base) && !url.startsWith("data:") && !url.startsWith("blob:")) {
      outside.push(url);
    }
  });
  await page.goto(`${base}/docs`, { waitUntil: "networkidle" });
  await page.waitForSelector(".opblock", { timeout: 15000 });

  const listed = new Set(
    await page.$$eval(".opblock", (blocks) =>
      blocks.map((b) => {
        const method = b.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "";
        const pathEl = b.querySelector(".opblock-summary-path");
        const path = pathEl?.getAttribute("data-path") ?? pathEl?.textContent?.trim() ?? "";
        return `${method.toUpperCase()} ${path.replace(/\u200b/g, "")}`;
      }),
    ),
  );
  const missing = [...expected].filter((op) => !listed.has(op));
  if (missing.length > 0) failures.push(`not listed: ${missing.join(", ")}`);

  // "Try it out" → "Execute" on a public GET, as a visitor would.
  const op = page
    .locator(".opblock.opblock-get")
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${tryPath}"]`) })
    .first();
  await op.locator(".opblock-summary").first().click();
  await op.locator("button.try-out__btn").click();
  await op.locator("button.execute").click();
  const statusCell = op.locator(".live-responses-table tbody .response-col_status").first();
  await statusCell.waitFor({ timeout: 15000 });
  const status = (await statusCell.textContent())?.trim() ?? "";
  if (!status.startsWith("200")) failures.push(`Try it out on GET ${tryPath} answered ${status}`);

  await page.screenshot({ path: screenshot, fullPage: true });
  if (outside.length > 0) failures.push(`requests outside the service: ${outside.join(", ")}`);
  console.log(
    JSON.stringify({ base, operations: expected.size, listed: listed.size, tried: tryPath, status, outside, failures }),
  );
} finally {
  await browser.close();
}
process.exit(failures.length === 0 ? 0 : 1);
