// What @thaunknown/simple-peer (the WebRTC peer of webtorrent and of
// bittorrent-tracker's client) imports from webrtc-polyfill, from @roamhq/wrtc.
import wrtc from '@roamhq/wrtc'

export const { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate } = wrtc
export default wrtc
