// The ES module entry: the CommonJS build, re-exported (one copy of the library, whichever way
// it is loaded). Node finds the names with its CommonJS export detection, so a new export needs
// no change here; __test__/api.test.mjs checks that every CommonJS export comes through.
export * from './index.js';
export { default } from './index.js';
