/** Static export: `npm run build` writes plain files to `out/`, which the FastAPI app serves at `/`.
 * No server runtime, no image optimisation service, nothing fetched from a CDN. */
const nextConfig = {
  output: "export",
  images: { unoptimized: true },
  trailingSlash: false,
  reactStrictMode: true,
  poweredByHeader: false,
};

export default nextConfig;
