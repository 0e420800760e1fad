// productpage: the front page; calls details and reviews by name for every request, as bookinfo's does.
import { env, getJson, peerOf, serve } from './http.mjs';

const details = env('DETAILS_URL');
const reviews = env('REVIEWS_URL');
serve(Number(env('PORT')), async (req) => {
  const [d, r] = await Promise.all([getJson(details), getJson(reviews)]);
  return { app: 'productpage', peer: peerOf(req), calls: { details: d, reviews: r } };
});
