// A <pb-model> and nothing else, from the built library bundle: ?src= is what it loads, ?models=
// the folder of local presets. Served by tests/pages/*.test.ts next to the built site.
const q = new URLSearchParams(location.search);
const model = document.createElement('pb-model');
model.setAttribute('models', q.get('models') ?? '/demos/models/');
model.setAttribute('src', q.get('src') ?? '');
document.getElementById('out').append(model);
await import('/patchbay.js');
