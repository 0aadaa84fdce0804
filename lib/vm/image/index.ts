// The test VM image, as the rest of the harness sees it: the cache (find,
// build, prune), the content key, what the image is made of.
export { ensureImage, findImage, pruneImages, vmCacheRoot, type VmImage } from "./cache.ts";
export { imageKey } from "./key.ts";
export { moduleLoadOrder, newcArchive } from "./initramfs.ts";
export { IMAGE_PACKAGES, IMAGE_SUITE } from "./recipe.ts";
