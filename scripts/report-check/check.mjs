// Opens a moecap CAP report (an .html file) in headless Chromium and checks what a reader needs:
// the page loads without a console error or page error, makes no network request (everything is
// inline), and every figure (plots, heatmaps, the radar) is present, laid out and non-empty once
// rasterised. Writes a full-page screenshot beside the report. Exit 0 = all checks pass.
import { chromium } from 'playwright-core';
import path from 'node:path';

const file = process.argv[2];
if (!file) {
  console.error('usage: node check.mjs REPORT.html [SCREENSHOT.png]');
  process.exit(2);
}
const shot = process.argv[3] || file.replace(/\.html$/, '.png');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const problems = [];
const requests = [];
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
await page.goto('file://' + path.resolve(file), { waitUntil: 'load' });
// Each figure's SVG drawn onto a canvas: count the pixels that are not white.
const figures = await page.evaluate(async () => {
  const out = [];
  for (const fig of document.querySelectorAll('figure.plot')) {
    const svg = fig.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    let inked = 0;
    if (svg && box.width > 0 && box.height > 0) {
      const xml = new XMLSerializer().serializeToString(svg);
      const img = new Image();
      img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(xml);
      await img.decode();
      const c = document.createElement('canvas');
      c.width = Math.ceil(box.width); c.height = Math.ceil(box.height);
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0, c.width, c.height);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) inked++;
      }
    }
    out.push({ id: fig.id, width: box.width, height: box.height, inked,
      series: svg ? svg.querySelectorAll('polygon.series, polyline, path, rect').length : 0 });
  }
  return out;
});
await page.screenshot({ path: shot, fullPage: true });
await browser.close();
if (requests.length) problems.push(`network requests: ${requests.join(', ')}`);
if (!figures.some((f) => f.id === 'radar')) problems.push('no CAP radar');
for (const f of figures) {
  if (!(f.width > 0 && f.height > 0)) problems.push(`${f.id}: not laid out`);
  else if (f.inked < 200) problems.push(`${f.id}: empty (${f.inked} inked pixels)`);
}
console.log(`${figures.length} figures, all drawn: ${figures.map((f) => `${f.id} ${f.inked}px`).join(', ')}`);
console.log(`screenshot: ${shot}`);
if (problems.length) {
  for (const p of problems) console.error(`FAIL ${p}`);
  process.exit(1);
}
console.log('report check passed: no errors, no network request, every figure drawn');
