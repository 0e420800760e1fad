// ratings: a leaf service answering with the stars of each review.
import { env, peerOf, serve } from './http.mjs';

serve(Number(env('PORT')), (req) => ({ app: 'ratings', peer: peerOf(req), ratings: [5, 4] }));
